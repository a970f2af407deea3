"""Hardened input (issue 7, item 10): every bad value is one ``error: …`` line and exit status 2.

Table-driven through ``engine.cli.main.main`` in-process; a few checks go through a real
subprocess (an empty strategy used to idle forever), the exchange stand-in (credentials in the
REST URL) and the Discord stand-in (error text over Discord's embed limit).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import engine.cli.forward_cmd as forward_cmd
from bot.errors import fit_text, user_message
from data.cache import cache_path
from data.names import ExchangeNameError
from data.symbols import SymbolError, normalize_symbol
from data.timeframes import TimeframeError, timeframe_ms
from engine.backtest_request import BacktestRequest
from engine.cli.main import main
from engine.errors import SecretScrubber, ServiceError, install_log_scrubber, scrub_secrets
from engine.forward.engine import ForwardEngine, RunSpec
from engine.registry import build_strategy
from engine.service import PaperService
from engine.settings import SettingsError, load_settings
from engine.strategy import MAX_WARMUP_CANDLES, ParamError, resolve_params
from tests.bot_helpers import TRADER, bot_env
from tests.forward_helpers import MINUTES
from tests.helpers import SAMPLE_DATA, run_cli
from tests.standins.exchange import CandleSeries, ExchangeStandin

BACKTEST = ["backtest", "--strategy", "sma_cross", "--symbol", "BTC/USDT", "--timeframe", "1h",
            "--start", "2019-01-01", "--end", "2019-01-31", "--data-dir", str(SAMPLE_DATA),
            "--no-charts", "--offline"]


pytestmark = pytest.mark.usefixtures("cli_isolated")


def assert_one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def with_option(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag`` set to ``value`` (replaced when present, else appended).

    A value starting with "-" is passed as ``--flag=value``, as a user would have to.
    """
    out = list(argv)
    if flag in out and flag != "--param":
        at = out.index(flag)
        del out[at:at + 2]
    return [*out, f"{flag}={value}"] if value.startswith("-") else [*out, flag, value]


def tree(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


# ---- 1-6, 11: backtest values -------------------------------------------------------------------
BPS = "must be a number from 0 to 1,000 basis points (10 %)"
BALANCE = "balance must be a number above 0 and at most 1,000,000,000,000"


@pytest.mark.parametrize("flag,value,message", [
    ("--fee-bps", "-1", f"fee_bps {BPS}, got -1"),
    ("--fee-bps", "nan", f"fee_bps {BPS}, got nan"),
    ("--fee-bps", "inf", f"fee_bps {BPS}, got inf"),
    ("--fee-bps", "1e300", f"fee_bps {BPS}, got 1e+300"),
    ("--fee-bps", "1000.5", f"fee_bps {BPS}"),
    ("--maker-fee-bps", "-5", f"maker_fee_bps {BPS}, got -5"),
    ("--maker-fee-bps", "nan", f"maker_fee_bps {BPS}, got nan"),
    ("--maker-fee-bps", "-inf", f"maker_fee_bps {BPS}, got -inf"),
    ("--slippage-bps", "-0.1", f"slippage_bps {BPS}, got -0.1"),
    ("--slippage-bps", "inf", f"slippage_bps {BPS}, got inf"),
    ("--slippage-bps", "5000", f"slippage_bps {BPS}, got 5000"),
    ("--balance", "-1", f"{BALANCE} (quote currency), got -1"),
    ("--balance", "0", f"{BALANCE} (quote currency), got 0"),
    ("--balance", "nan", f"{BALANCE} (quote currency), got nan"),
    ("--balance", "inf", f"{BALANCE} (quote currency), got inf"),
    ("--balance", "1e13", BALANCE),
    ("--balance", "lots", "argument --balance: invalid float value: 'lots'"),
    ("--param", "stop_loss_pct=nan", "parameter stop_loss_pct takes finite numbers"),
    ("--param", "take_profit_pct=inf", "parameter take_profit_pct takes finite numbers"),
    ("--param", "size_percent=-inf", "parameter size_percent takes finite numbers"),
    ("--param", "fast=" + "9" * 5000, "parameter fast takes int values"),
    ("--timeframe", "999999999999h", "timeframe '999999999999h' is longer than one year"),
    ("--timeframe", "53w", "is longer than one year (at most 8760h, 365d or 52w)"),
    ("--timeframe", "1" * 5000 + "h", "unknown timeframe '111111111111111…'; use one of 1m"),
    ("--symbol", "A" * 1000 + "/USDT", "is too long (at most 40 characters), e.g. BTC/USDT"),
    ("--symbol", "BTC/USDT:BTC", "the contract settles in 'BTC', not in USDT; paperbot trades "
                                 "spot BTC/USDT and linear perpetuals BTC/USDT:USDT"),
    ("--symbol", "ETH/USD:ETH", "paperbot trades spot ETH/USD and linear perpetuals"),
    ("--symbol", "BTC/USDT:", "settles in nothing"),
    ("--symbol", "BTC/USDT:USDT-250328", "not supported"),
    ("--exchange", "../../tmp/x", "exchange '../../tmp/x' is not a plain exchange id"),
    ("--exchange", "bin ance", "is not a plain exchange id"),
    ("--param", "slow=100000000", "sma_cross with slow=100000000 needs 100,000,000 candles of "
                                  "warm-up, more than the history limit of 50,000 candles"),
    ("--start", "2019-01-01" + "x" * 3000, "bad start date '2019-01-01xxxxx"),
])
def test_bad_backtest_values_are_one_line_and_exit_2(capsys, flag, value, message):
    code, out, err = run_cli(capsys, *with_option(BACKTEST, flag, value))
    assert_one_line_error(code, out, err, message)
    assert len(err) < 400  # long input is quoted cut, never echoed whole


def test_bounds_themselves_are_accepted_and_an_explicit_balance_is_used(capsys):
    code, out, err = run_cli(capsys, *BACKTEST, "--fee-bps", "1000", "--slippage-bps", "0",
                             "--maker-fee-bps", "0", "--balance", "1e12", "--json",
                             "--param", "fast=5", "--param", "slow=20",
                             "--param", "size_percent=50")
    assert code == 0, err
    result = json.loads(out)
    trades = result["trades"]
    assert trades, "the window must trade for the fee check to mean something"
    assert result["final_equity"] == pytest.approx(1e12 + sum(t["pnl"] for t in trades))
    first = trades[0]  # 1,000 bp = 10 % of the entry notional, plus the exit's fee
    assert first["fees"] >= 0.1 * first["entry_price"] * first["size"] * 0.999
    code, out, err = run_cli(capsys, *BACKTEST, "--balance", "5000")
    assert code == 0, err
    assert "starting balance 5,000.00 USDT" in out


def test_settle_equal_to_quote_is_a_linear_perpetual():
    assert normalize_symbol("btc/usdt:usdt") == "BTC/USDT:USDT"
    assert normalize_symbol("BTC/USDT") == "BTC/USDT"
    with pytest.raises(SymbolError, match="settles in 'BTC'"):
        normalize_symbol("BTC/USDT:BTC")


def test_timeframe_grammar_limits():
    assert timeframe_ms("8760h") == timeframe_ms("365d") == 365 * 86_400_000
    for bad in ("8761h", "366d", "999999999999h", "1" * 30 + "m", "1h" * 600):
        with pytest.raises(TimeframeError):
            timeframe_ms(bad)


def test_param_parser_refuses_non_finite_floats_but_takes_finite_ones():
    declared = {"stop_loss_pct": 0.0, "fast": 20}
    assert resolve_params(declared, {"stop_loss_pct": "2.5"})["stop_loss_pct"] == 2.5
    assert resolve_params(declared, {"stop_loss_pct": 3})["stop_loss_pct"] == 3.0
    for bad in ("nan", "inf", "-inf", "NaN", math.nan, math.inf):
        with pytest.raises(ParamError, match="stop_loss_pct takes finite numbers"):
            resolve_params(declared, {"stop_loss_pct": bad})


# ---- 7: unwritable --out ----------------------------------------------------------------------
def test_unwritable_out_folder_is_one_line_naming_it(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    argv = [a for a in BACKTEST if a != "--no-charts"]
    code, out, err = run_cli(capsys, *argv, "--out", str(blocker / "charts"))
    assert_one_line_error(code, out, err,
                          f"cannot write to the output folder {blocker / 'charts'}",
                          "Not a directory", "--out")
    assert blocker.read_text() == "not a folder"


# ---- 8: data fetch / import ---------------------------------------------------------------------
def test_data_fetch_with_an_unknown_exchange_says_how_to_list_ids(capsys, tmp_path):
    code, out, err = run_cli(capsys, "data", "fetch", "--exchange", "nope", "--symbol",
                             "BTC/USDT", "--timeframe", "1h", "--start", "2024-01-01",
                             "--data-dir", str(tmp_path / "cache"))
    assert_one_line_error(code, out, err, "unknown exchange 'nope'", "ccxt exchange id",
                          "print(ccxt.exchanges)")
    code, out, err = run_cli(capsys, "data", "fetch", "--exchange", "binanc", "--symbol",
                             "BTC/USDT", "--timeframe", "1h", "--start", "2024-01-01",
                             "--data-dir", str(tmp_path / "cache"))
    assert_one_line_error(code, out, err, "did you mean binance")
    assert not (tmp_path / "cache").exists()


def test_data_import_of_a_folder_or_a_missing_or_unreadable_file(capsys, tmp_path,
                                                                 monkeypatch):
    cache = tmp_path / "cache"
    common = ["--symbol", "BTC/USDT", "--timeframe", "1h", "--data-dir", str(cache)]
    code, out, err = run_cli(capsys, "data", "import", str(tmp_path), *common)
    assert_one_line_error(code, out, err, f"cannot import {tmp_path}: it is a folder")
    code, out, err = run_cli(capsys, "data", "import", str(tmp_path / "nope.csv"), *common)
    assert_one_line_error(code, out, err, f"no such file: {tmp_path / 'nope.csv'}")
    locked = tmp_path / "locked.csv"
    locked.write_text("timestamp,open,high,low,close,volume\n")

    def refuse(*_args, **_kwargs):  # tests run as root, where chmod 000 does not stop reads
        raise PermissionError(13, "Permission denied", str(locked))

    monkeypatch.setattr("data.importer.pd.read_csv", refuse)
    code, out, err = run_cli(capsys, "data", "import", str(locked), *common)
    assert_one_line_error(code, out, err, f"cannot read {locked}: Permission denied")
    assert not cache.exists()


# ---- 12: names are checked before any path is built --------------------------------------------
@pytest.mark.parametrize("flag,value", [
    ("--exchange", "../../../escaped"),
    ("--exchange", "a/b"),
    ("--exchange", "x/../../../escaped"),
    ("--symbol", "../../ESCAPED/USDT"),
    ("--symbol", "BTC/../../USDT"),
    ("--timeframe", "1h/../../../escaped"),
])
def test_data_import_never_writes_outside_the_data_dir(capsys, tmp_path, flag, value):
    data_dir = tmp_path / "deep" / "er" / "cache"
    argv = ["data", "import", str(SAMPLE_DATA / "binance_BTC-USDT_1h.parquet"), "--exchange",
            "binance", "--symbol", "BTC/USDT", "--timeframe", "1h", "--data-dir", str(data_dir)]
    argv[argv.index(flag) + 1] = value
    before = tree(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert_one_line_error(code, out, err, "cannot import")
    assert tree(tmp_path) == before  # nothing written anywhere, inside or outside


def test_cache_path_stays_inside_the_data_dir(tmp_path):
    path = cache_path(tmp_path, "Binance", "btc/usdt:usdt", " 1h ")
    assert path == tmp_path / "binance_BTC-USDT-USDT_1h.parquet"
    with pytest.raises(ExchangeNameError):
        cache_path(tmp_path, "../x", "BTC/USDT", "1h")
    with pytest.raises(ExchangeNameError):
        cache_path(tmp_path, "", "BTC/USDT", "1h")
    with pytest.raises(SymbolError):
        cache_path(tmp_path, "binance", "BTC/US.DT", "1h")
    with pytest.raises(TimeframeError):
        cache_path(tmp_path, "binance", "BTC/USDT", "1h/x")


# ---- 9: forward argument checks -----------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["--strategy", "", "--symbol", "BTC/USDT"], "--strategy is empty: give a strategy name"),
    (["--strategy", "  ", "--symbol", "BTC/USDT"], "--strategy is empty"),
    (["--strategy", "sma_cross", "--symbol", ""], "--symbol is required with --strategy"),
    (["--strategy", "sma_cross"], "--symbol is required with --strategy"),
    (["--symbol", "BTC/USDT"], "--symbol only apply to a new run: add --strategy NAME"),
    (["--param", "fast=5", "--balance", "100"], "--balance, --param only apply to a new run"),
    (["--strategy", "sma_cross", "--symbol", "BTC/USDT", "--balance", "inf"],
     "--balance must be a number above 0"),
    (["--strategy", "sma_cross", "--symbol", "BTC/USDT", "--balance", "0"],
     "--balance must be a number above 0"),
    (["--strategy", "sma_cross", "--symbol", "BTC/USDT", "--param", "fast"],
     "is not key=value"),
])
def test_forward_argument_checks_run_before_the_runtime(capsys, monkeypatch, tmp_path, args,
                                                        message):
    async def must_not_serve(*_args):
        raise AssertionError("the runtime was started")

    monkeypatch.setattr(forward_cmd, "_serve", must_not_serve)
    code, out, err = run_cli(capsys, "forward", *args, "--db", str(tmp_path / "runs.db"))
    assert_one_line_error(code, out, err, message)


def test_forward_with_an_empty_strategy_exits_instead_of_idling(tmp_path):
    exe = Path(sys.executable).with_name("paperbot")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOT_")}
    proc = subprocess.run([str(exe), "forward", "--strategy", "", "--symbol", "BTC/USDT",
                           "--db", str(tmp_path / "runs.db")],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: --strategy is empty") and proc.stderr.count("\n") == 1
    assert not (tmp_path / "runs.db").exists()  # refused before any database was opened


def test_forward_engine_check_spec_refuses_bad_specs(tmp_path):
    settings = load_settings(db_path=tmp_path / "runs.db")
    engine = ForwardEngine(settings, store=None)  # type: ignore[arg-type]  # no I/O here
    good = RunSpec(strategy="sma_cross", symbol="BTC/USDT", timeframe="1m")
    _, symbol, exchange, balance = engine.check_spec(good)
    assert (symbol, exchange, balance) == ("BTC/USDT", "bybit", 10_000.0)
    for spec, message in [
        (RunSpec(strategy="", symbol="BTC/USDT"), "give a strategy name"),
        (RunSpec(strategy="sma_cross", symbol=" "), "give a symbol"),
        (RunSpec(strategy="sma_cross", symbol="BTC/USDT", balance=math.inf), "balance must"),
        (RunSpec(strategy="sma_cross", symbol="BTC/USDT", balance=0.0), "balance must"),
        (RunSpec(strategy="sma_cross", symbol="BTC/USDT", fee_bps=math.nan), "fee_bps must"),
        (RunSpec(strategy="sma_cross", symbol="BTC/USDT", slippage_bps=-1), "slippage_bps"),
        (RunSpec(strategy="sma_cross", symbol="BTC/USDT:BTC"), "settles in 'BTC'"),
        (RunSpec(strategy="sma_cross", symbol="BTC/USDT", params={"slow": "100000000"}),
         "history limit of 50,000 candles"),
    ]:
        with pytest.raises(ServiceError, match=message.replace("(", r"\(")):
            engine.check_spec(spec)


# ---- 10: settings at start ----------------------------------------------------------------------
@pytest.mark.parametrize("env,message", [
    ({"PAPERBOT_LOG_LEVEL": "LOUD"}, "PAPERBOT_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, "
                                     "ERROR, CRITICAL, got 'LOUD'"),
    ({"PAPERBOT_LIVE_EXCHANGE": "kraken"}, "PAPERBOT_LIVE_EXCHANGE: forward runs support bybit "
                                           "and binance only, got 'kraken'"),
    ({"PAPERBOT_EXCHANGE": "nope"}, "PAPERBOT_EXCHANGE: unknown exchange 'nope'"),
    ({"PAPERBOT_EXCHANGE": "../x"}, "PAPERBOT_EXCHANGE: unknown exchange '../x'"),
    ({"PAPERBOT_EXCHANGE_REST_URL": "api.bybit.com"},
     "PAPERBOT_EXCHANGE_REST_URL: must be a URL starting with http:// or https://"),
    ({"PAPERBOT_EXCHANGE_REST_URL": "ws://127.0.0.1:1"}, "PAPERBOT_EXCHANGE_REST_URL: must be"),
    ({"PAPERBOT_EXCHANGE_WS_URL": "http://127.0.0.1:1/ws"},
     "PAPERBOT_EXCHANGE_WS_URL: must be a URL starting with ws:// or wss://"),
    ({"PAPERBOT_EXCHANGE_WS_URL": "wss://"}, "PAPERBOT_EXCHANGE_WS_URL: must be"),
    ({"PAPERBOT_FEE_BPS": "nan"}, f"PAPERBOT_FEE_BPS: value {BPS}, got nan"),
    ({"PAPERBOT_FEE_BPS": "-1"}, f"PAPERBOT_FEE_BPS: value {BPS}, got -1"),
    ({"PAPERBOT_FEE_BPS": "1000.5"}, f"PAPERBOT_FEE_BPS: value {BPS}"),
    ({"PAPERBOT_MAKER_FEE_BPS": "inf"}, f"PAPERBOT_MAKER_FEE_BPS: value {BPS}, got inf"),
    ({"PAPERBOT_SLIPPAGE_BPS": "1e9"}, f"PAPERBOT_SLIPPAGE_BPS: value {BPS}"),
    ({"PAPERBOT_BALANCE": "0"}, "PAPERBOT_BALANCE: value must be a number above 0"),
    ({"PAPERBOT_BALANCE": "inf"}, "PAPERBOT_BALANCE: value must be a number above 0"),
    ({"PAPERBOT_DB_PATH": "."}, "PAPERBOT_DB_PATH: . is a folder; give the database file"),
])
def test_bad_settings_are_refused_at_start(capsys, monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, out, err = run_cli(capsys, "strategies")
    assert_one_line_error(code, out, err, message)


def test_one_line_per_bad_variable_and_valid_values_pass(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PAPERBOT_LOG_LEVEL", "LOUD")
    monkeypatch.setenv("PAPERBOT_LIVE_EXCHANGE", "kraken")
    monkeypatch.setenv("PAPERBOT_EXCHANGE_REST_URL", "ftp://user:s3cret@host/?apiKey=abc")
    code, out, err = run_cli(capsys, "strategies")
    lines = err.splitlines()
    assert code == 2 and out == ""
    assert sorted(line.split(":")[1].strip() for line in lines) == [
        "PAPERBOT_EXCHANGE_REST_URL", "PAPERBOT_LIVE_EXCHANGE", "PAPERBOT_LOG_LEVEL"]
    assert all(line.startswith("error: PAPERBOT_") for line in lines)
    assert "s3cret" not in err and "abc" not in err and "ftp://***@host/?apiKey=***" in err
    for key in ("PAPERBOT_LOG_LEVEL", "PAPERBOT_LIVE_EXCHANGE", "PAPERBOT_EXCHANGE_REST_URL"):
        monkeypatch.delenv(key)
    settings = load_settings(log_level="debug", live_exchange=" Binance ", exchange="kraken",
                             exchange_rest_url="https://api.example.com/prefix",
                             exchange_ws_url="ws://127.0.0.1:9/ws", fee_bps=1000,
                             slippage_bps=0, balance=1e12)
    assert (settings.log_level, settings.live_exchange, settings.exchange) == \
        ("DEBUG", "binance", "kraken")
    assert load_settings(exchange_rest_url="  ").exchange_rest_url is None
    with pytest.raises(SettingsError) as caught:
        load_settings(exchange_ws_url="https://u:pw@host:1/?token=t0k")
    assert "t0k" not in str(caught.value) and ":pw" not in str(caught.value)
    assert len(caught.value.problems) == 1


# ---- 11: history limit through the service -----------------------------------------------------
def test_warmup_limit_names_values_and_limit():
    assert MAX_WARMUP_CANDLES == 50_000
    at_limit = build_strategy("sma_cross", {"slow": str(MAX_WARMUP_CANDLES)}, "1h")
    assert at_limit.warmup_candles() == MAX_WARMUP_CANDLES
    with pytest.raises(ServiceError) as caught:
        build_strategy("sma_cross", {"fast": "5", "slow": str(MAX_WARMUP_CANDLES + 1)}, "1h")
    assert str(caught.value) == ("sma_cross with fast=5 slow=50001 needs 50,001 candles of "
                                 "warm-up, more than the history limit of 50,000 candles; "
                                 "choose smaller values")


async def test_backtest_with_a_huge_warmup_is_refused_not_zero_trades(tmp_path):
    settings = load_settings(data_dir=SAMPLE_DATA, out_dir=tmp_path / "out", offline=True)
    service = PaperService(settings)
    request = BacktestRequest(strategy="sma_cross", symbol="BTC/USDT", timeframe="1h",
                              params={"slow": "100000000"})
    with pytest.raises(ServiceError, match="history limit of 50,000 candles"):
        service.check_backtest(request)
    with pytest.raises(ServiceError, match=r"slow=100000000 needs 100,000,000 candles"):
        await asyncio.wait_for(service.backtest(request), timeout=30)
    # the same request object the Discord cog builds: fees and balance are checked there too
    for bad in ({"fee_bps": math.nan}, {"slippage_bps": 2000.0}, {"balance": math.inf},
                {"balance": 0.0}, {"maker_fee_bps": -1.0}):
        with pytest.raises(ServiceError, match="must be a number"):
            service.check_backtest(BacktestRequest(strategy="sma_cross", symbol="BTC/USDT",
                                                   timeframe="1h", **bad))
    assert not (tmp_path / "out").exists()


# ---- 13, 14: secrets and Discord's size limit --------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("https://user:pw@host/x?apiKey=abc&limit=5", "https://***@host/x?apiKey=***&limit=5"),
    ("GET http://u@127.0.0.1:9/v5?api_key=k1&secret=s2&recv=5",
     "GET http://***@127.0.0.1:9/v5?api_key=***&secret=***&recv=5"),
    ("wss://h/ws?token=t&signature=abc&password=p&key=z",
     "wss://h/ws?token=***&signature=***&password=***&key=***"),
    ("no url here, key=value stays", "no url here, key=value stays"),
    ("https://api.bybit.com/v5/market/kline?symbol=BTCUSDT&interval=1",
     "https://api.bybit.com/v5/market/kline?symbol=BTCUSDT&interval=1"),
])
def test_scrub_secrets(text, expected):
    assert scrub_secrets(text) == expected
    assert str(ServiceError(text)) == expected


def test_log_scrubber_masks_messages_and_tracebacks():
    logger = logging.getLogger("paperbot.test.scrubber")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        install_log_scrubber(logger)
        install_log_scrubber(logger)
        assert sum(isinstance(f, SecretScrubber) for f in handler.filters) == 1
        logger.warning("fetch %s failed", "https://user:s3cret@host/?apiKey=k3y")
        try:
            raise ValueError("bad url http://me:pa55@host/")
        except ValueError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "fetch https://***@host/?apiKey=*** failed" in text
    assert "http://***@host/" in text and "ValueError" in text
    assert "s3cret" not in text and "k3y" not in text and "pa55" not in text


def test_cli_installs_the_log_scrubber(capsys):
    assert run_cli(capsys, "strategies")[0] == 0
    assert any(isinstance(f, SecretScrubber) for h in logging.getLogger().handlers
               for f in h.filters)


async def test_credentials_of_the_rest_url_never_reach_the_cli(capsys, monkeypatch, tmp_path):
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=300, cursor=200)
    async with ExchangeStandin([series]) as ex:
        ex.rest.failures.append((401, None))  # ccxt's AuthenticationError quotes the URL
        url = ex.rest_url.replace("http://", "http://trader:s3cret@") + "/?apiKey=k3y"
        monkeypatch.setenv("PAPERBOT_LIVE_EXCHANGE", "bybit")
        monkeypatch.setenv("PAPERBOT_EXCHANGE_REST_URL", url)
        code = await asyncio.wait_for(asyncio.to_thread(main, [
            "data", "fetch", "--exchange", "bybit", "--symbol", "BTC/USDT", "--timeframe", "1m",
            "--start", "2024-01-01", "--data-dir", str(tmp_path / "cache")]), timeout=60)
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err, "could not fetch BTC/USDT 1m from bybit",
                          "401", "http://***@127.0.0.1:")
    assert "s3cret" not in err and "trader" not in err and "k3y" not in err


def test_fit_text_and_user_message():
    assert fit_text("short") == "short"
    cut = fit_text("x" * 5000)
    assert len(cut) == 4000 and cut.endswith("x…")
    assert len(fit_text("y" * 50, limit=10)) == 10
    error = ServiceError("could not reach http://u:p@host/?token=t")
    assert user_message(error) == "could not reach http://***@host/?token=***"


async def test_discord_errors_fit_an_embed_and_huge_warmups_are_refused(tmp_path):
    async with bot_env(tmp_path) as env:
        long_id = await env.ds.invoke("positions", {"run": "r" * 5000}, user_id=TRADER)
        await long_id.wait_done(timeout=20)
        warmup = await env.ds.invoke("backtest run", {
            "strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
            "params": "slow=100000000"}, user_id=TRADER)
        await warmup.wait_done(lambda r: any(m.ephemeral for m in r.messages)
                               or (r.ephemeral and r.final is not None), timeout=20)
    assert not long_id.expired and long_id.ephemeral
    description = long_id.final.embeds[0]["description"]
    assert description.startswith("⚠️ unknown run 'rrrr") and description.endswith("…")
    assert len(description) <= 4000
    assert not warmup.expired and warmup.ephemeral
    text = warmup.final.embeds[0]["description"]
    assert "slow=100000000 needs 100,000,000 candles" in text and "50,000" in text
    assert not warmup.deferred  # refused at once, before any work
