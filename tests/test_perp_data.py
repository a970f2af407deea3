"""Perpetuals, phase A: open interest, funding and CVD as strategy inputs; their history
(fetch through the exchange stand-in, Binance public-data import); spot and perpetual caches
kept apart, old caches migrated; the oi_divergence strategy in a backtest; no pandas live."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.cache import cache_path, list_cache, merge_candles, read_candles, write_candles
from data.exchanges import make_exchange
from data.loader import CandleLoader
from data.migrate import migrate_cache
from data.perp import PerpInputs, PerpPoint, align_funding, align_open_interest
from data.perp_fetch import update_funding, update_open_interest
from data.perp_load import load_perp_inputs
from data.perp_store import funding_path, oi_path, read_series
from engine.cli.main import main
from engine.market import MarketData
from engine.types import Candle
from tests.helpers import HOUR, MIN, SAMPLE_DATA, T0, candles
from tests.standins.exchange import CandleSeries, ExchangeStandin

REPO = Path(__file__).resolve().parents[1]
JAN_2018 = 1_514_764_800_000  # 2018-01-01 00:00 UTC


pytestmark = pytest.mark.usefixtures("cli_isolated")


async def no_sleep(_seconds: float) -> None:
    return None


# ---- alignment to candle closes --------------------------------------------------------------

def test_open_interest_is_the_sample_at_or_before_the_close_and_goes_stale():
    candle_ts = T0 + HOUR * np.arange(-1, 5)  # 1h candles opening 23:00 … 04:00
    oi_ts = T0 + 30 * MIN * np.arange(3)  # samples every 30 min at 00:00, 00:30, 01:00, then none
    aligned = align_open_interest(candle_ts, "1h", oi_ts, np.array([100.0, 130.0, 160.0]),
                                  30 * MIN)
    # 23:00 closes 00:00: the 00:00 sample; 00:00 closes 01:00: the 01:00 sample (at the close);
    # 01:00 closes 02:00: 01:00 is 60 min old = 2 periods, the limit; 02:00 closes 03:00: stale
    assert aligned[:3].tolist() == [100.0, 160.0, 160.0]
    assert np.isnan(aligned[3:]).all()
    before = align_open_interest(candle_ts, "1h", oi_ts + 2 * HOUR, np.ones(3), 30 * MIN)
    assert np.isnan(before[:2]).all() and before[2] == 1.0  # nothing before the first sample


def test_alignment_never_reads_a_sample_taken_after_the_close():
    rng = np.random.default_rng(3)
    candle_ts = T0 + 15 * MIN * np.arange(200)
    oi_ts = np.sort(rng.choice(np.arange(T0, T0 + 200 * 15 * MIN, MIN), 400, replace=False))
    oi = rng.uniform(1, 2, len(oi_ts))
    full = align_open_interest(candle_ts, "15m", oi_ts, oi, 5 * MIN)
    for k in range(0, 200, 7):
        close = candle_ts[k] + 15 * MIN
        known = oi_ts <= close  # what existed when candle k closed
        cut = align_open_interest(candle_ts[: k + 1], "15m", oi_ts[known], oi[known], 5 * MIN)
        np.testing.assert_array_equal(cut, full[: k + 1])


def test_funding_is_the_last_published_rate_until_two_intervals_pass():
    funding_ts = T0 + 8 * HOUR * np.arange(3)  # 00:00, 08:00, 16:00, then nothing
    rates = np.array([0.0001, -0.0002, 0.0003])
    candle_ts = T0 + HOUR * np.arange(-1, 34)  # 1h candles from 23:00 the day before
    aligned = align_funding(candle_ts, "1h", funding_ts, rates)  # interval 8 h: stale > 16 h
    by_close = dict(zip((candle_ts + HOUR).tolist(), aligned.tolist(), strict=True))
    assert by_close[T0] == 0.0001  # the 00:00 settlement is published at 00:00
    assert by_close[T0 + 7 * HOUR] == 0.0001
    assert by_close[T0 + 8 * HOUR] == -0.0002
    assert by_close[T0 + 32 * HOUR] == 0.0003  # 16 h after 16:00: still the limit
    assert np.isnan(by_close[T0 + 33 * HOUR])  # 17 h: stale
    assert np.isnan(align_funding(candle_ts[:1], "1h", funding_ts + HOUR, rates)[0])


# ---- CVD ------------------------------------------------------------------------------------

def _binance_kline_csv(path: Path, rows: list[tuple[float, float, float, float, float, float]],
                       start: int, step: int) -> None:
    """A Binance public-data kline CSV (no header): o, h, l, c, volume, taker buy volume."""
    lines = []
    for i, (o, h, low, c, v, tb) in enumerate(rows):
        t = start + i * step
        lines.append(f"{t},{o},{h},{low},{c},{v},{t + step - 1},{v * c},10,{tb},{tb * c},0")
    path.write_text("\n".join(lines) + "\n")


def test_cvd_from_taker_volume_equals_the_hand_computation(tmp_path):
    volume = [10.0, 4.0, 6.0, 8.0, 2.0, 5.0, 7.0, 3.0, 9.0, 1.0]
    taker = [7.0, 1.0, 3.0, 2.0, 2.0, 0.5, 6.0, 1.5, 4.0, 0.0]
    rows = [(100.0, 101.0, 99.0, 100.5, v, tb) for v, tb in zip(volume, taker, strict=True)]
    start = T0 + 5 * MIN  # the 1m file starts at 00:05: two whole 5m bins
    _binance_kline_csv(tmp_path / "k.csv", rows, start, MIN)
    assert main(["data", "import", str(tmp_path / "k.csv"), "--exchange", "binanceusdm",
                 "--symbol", "BTC/USDT", "--timeframe", "1m", "--data-dir",
                 str(tmp_path / "c")]) == 0
    stored = tmp_path / "c" / "binanceusdm_BTC-USDT-USDT_1m.parquet"  # a perpetual's name
    loader = CandleLoader(tmp_path / "c")
    # delta = taker buys − taker sells = 2·tb − volume: 4, −2, 0, −4, 2, −4, 5, 0, −1, −1
    hand = np.cumsum(2 * np.array(taker) - np.array(volume))
    for tf, expected in (("1m", hand), ("5m", hand[[4, 9]])):  # 5m: the CVD of its last 1m
        found, source = loader.load("binanceusdm", "BTC/USDT", tf)
        perp = load_perp_inputs(tmp_path / "c", "binanceusdm", "BTC/USDT", tf, found, source)
        market = MarketData("BTC/USDT:USDT", tf, found, [], perp=perp.inputs)
        market.prepare_steps()
        market.advance(len(found) - 1)
        assert market.base.cvd_source == "taker"
        assert market.base.cvd.values.tolist() == expected.tolist()
    # a later ccxt fetch (no taker column) over the same minutes keeps the stored taker volume
    merge_candles(stored, read_candles(stored).assign(close=100.25))
    kept = read_candles(stored, extra=True)
    assert kept["taker_buy_volume"].tolist() == taker and kept["close"].eq(100.25).all()
    # a candle without taker volume: the whole series falls back to the approximation
    found, _ = loader.load("binanceusdm", "BTC/USDT", "1m")
    gap = np.array(taker)
    gap[3] = np.nan
    market = MarketData("BTC/USDT:USDT", "1m", found, ["5m"],
                        perp=PerpInputs(*(np.full(10, np.nan),) * 2, gap))
    market.prepare_steps()
    market.advance(9)
    assert market["5m"].cvd_source == "approx"
    assert market.base.cvd.values.tolist() == np.cumsum(volume).tolist()  # every close > open


def test_informative_timeframes_show_the_last_base_value_and_live_appends_agree():
    n = 60
    rng = np.random.default_rng(5)
    closes = 100 + np.cumsum(rng.normal(0, 1, n))
    base = candles([(c - 0.2, c + 1, c - 1, c) for c in closes], start=T0 + 30 * MIN,
                   step=15 * MIN)  # starts mid-hour: the leading 1h bin is partial
    base.volume[:] = rng.uniform(1, 5, n)
    perp = PerpInputs(open_interest=np.where(np.arange(n) % 7 == 3, np.nan, 1000 + np.arange(n)),
                      funding_rate=1e-5 * np.arange(n),
                      taker_buy_volume=base.volume * rng.uniform(0, 1, n))
    backtest = MarketData("BTC/USDT:USDT", "15m", base, ["1h"], perp=perp)
    backtest.prepare_steps()
    live = MarketData("BTC/USDT:USDT", "15m", base.take(slice(0, 9)), ["1h"], mirror=False,
                      perp=perp.take(slice(0, 9)))
    live.go_live()
    names = ("open_interest", "funding_rate", "cvd")
    for i in range(9, n):
        live.append(Candle(*(getattr(base, c)[i].item() for c in
                             ("timestamp", "open", "high", "low", "close", "volume"))),
                    PerpPoint(perp.open_interest[i], perp.funding_rate[i],
                              perp.taker_buy_volume[i]))
        backtest.advance(i)
        for tf in ("15m", "1h"):
            for name in names:
                np.testing.assert_array_equal(getattr(live[tf], name).values,
                                              getattr(backtest[tf], name).values)
    hourly, quarter = backtest["1h"], backtest.base
    assert hourly.cvd_source == "taker" and len(hourly) == 14
    # the 01:00 hour closes at 02:00 with the 01:45 candle: it shows that candle's values
    last = int(np.flatnonzero(base.timestamp == T0 + HOUR + 45 * MIN)[0])
    assert hourly.timestamp[0] == T0 + HOUR
    assert hourly.open_interest[0] == quarter.open_interest[last] == 1000 + last
    assert hourly.funding_rate[0] == perp.funding_rate[last]
    assert hourly.cvd[0] == quarter.cvd[last]


# ---- spot and perpetual caches ----------------------------------------------------------------

def test_spot_and_perpetual_candles_live_in_their_own_files(tmp_path):
    spot, perp = candles([(10, 11, 9, 10)] * 3), candles([(20, 21, 19, 20)] * 3)
    write_candles(cache_path(tmp_path, "bybit", "BTC/USDT", "1h"), spot.to_frame())
    write_candles(cache_path(tmp_path, "bybit", "BTC/USDT:USDT", "1h"), perp.to_frame())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bybit_BTC-USDT-USDT_1h.parquet", "bybit_BTC-USDT_1h.parquet"]
    loader = CandleLoader(tmp_path)
    assert loader.load("bybit", "BTC/USDT", "1h")[0].close.tolist() == [10.0] * 3
    assert loader.load("bybit", "BTC/USDT:USDT", "1h")[0].close.tolist() == [20.0] * 3
    # binanceusdm lists perpetuals only: BTC/USDT there is the perpetual
    assert cache_path(tmp_path, "binanceusdm", "BTC/USDT", "1h").name == \
        "binanceusdm_BTC-USDT-USDT_1h.parquet"
    assert [(e.symbol, e.kind) for e in list_cache(tmp_path)] == [
        ("BTC/USDT", "candles"), ("BTC/USDT:USDT", "candles")]


def test_an_old_cache_is_migrated_once_and_spot_files_stay(tmp_path, caplog):
    def put(name, rows, start=T0, step=HOUR):
        write_candles(tmp_path / name, candles(rows, start=start, step=step).to_frame())

    put("bybit_BTC-USDT_1h.parquet", [(20, 21, 19, 20)] * 4)  # fetched as BTC/USDT:USDT …
    pd.DataFrame({"timestamp": T0 + HOUR * np.arange(4), "open_interest": [5.0, 6, 7, 8]}) \
        .to_parquet(tmp_path / "bybit_BTC-USDT_1h.oi.parquet")  # … with its open interest
    put("bybit_BTC-USDT_1m.parquet", [(10, 11, 9, 10)] * 4)  # no evidence: stays spot
    put("binance_ETH-USDT_1h.parquet", [(1, 2, 0.5, 1)] * 2)  # spot, like ../shared/data
    put("binanceusdm_BTC-USDT_4h.parquet", [(30, 31, 29, 30)] * 3, step=4 * HOUR)  # perp-only
    put("binanceusdm_BTC-USDT-USDT_4h.parquet", [(40, 41, 39, 40)] * 2, start=T0 + 8 * HOUR,
        step=4 * HOUR)
    caplog.set_level("WARNING", logger="data.migrate")
    entries = list_cache(tmp_path)  # data list runs the migration
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "binance_ETH-USDT_1h.parquet", "binanceusdm_BTC-USDT-USDT_4h.parquet",
        "bybit_BTC-USDT-USDT_1h.oi.parquet", "bybit_BTC-USDT-USDT_1h.parquet",
        "bybit_BTC-USDT_1m.parquet"]
    assert [(e.exchange, e.symbol, e.timeframe, e.kind, e.rows) for e in entries] == [
        ("binance", "ETH/USDT", "1h", "candles", 2),
        ("binanceusdm", "BTC/USDT:USDT", "4h", "candles", 4),
        ("bybit", "BTC/USDT", "1m", "candles", 4),
        ("bybit", "BTC/USDT:USDT", "1h", "candles", 4),
        ("bybit", "BTC/USDT:USDT", "1h", "open_interest", 4)]
    merged = read_candles(tmp_path / "binanceusdm_BTC-USDT-USDT_4h.parquet")
    assert merged["close"].tolist() == [30.0, 30.0, 40.0, 40.0]  # the new file's rows win
    assert read_series(oi_path(tmp_path, "bybit", "BTC/USDT", "1h"), "open_interest")[1] \
        .tolist() == [5.0, 6.0, 7.0, 8.0]
    assert sum("moved" in r.getMessage() for r in caplog.records) == 3
    assert migrate_cache(tmp_path) == []  # nothing left to move


# ---- history through the exchange stand-in ----------------------------------------------------

@pytest.mark.parametrize(("exchange_id", "oi_path_name", "funding_path_name"), [
    ("bybit", "/v5/market/open-interest", "/v5/market/funding/history"),
    ("binanceusdm", "/futures/data/openInterestHist", "/fapi/v1/fundingRate"),
])
async def test_fetch_open_interest_and_funding_pages_through_the_standin(
        tmp_path, exchange_id, oi_path_name, funding_path_name):
    series = CandleSeries.from_parquet(SAMPLE_DATA / "binance_BTC-USDT_1h.parquet", "BTC/USDT",
                                       "1h", count=1200, cursor=1200)
    start, end = int(series.ts[0]), int(series.ts[0]) + 1100 * HOUR
    async with ExchangeStandin([series]) as ex:
        client = make_exchange(exchange_id, rest_url=ex.rest_url, market_type="linear")
        kw = {"now_ms": ex.now_ms, "retry": {"sleep": no_sleep}}
        try:
            await client.load_markets()
            ex.fail_next_rest(1, status=429)  # the first history request is rate-limited
            oi_count, oi_file = await update_open_interest(
                client, tmp_path, exchange_id, "BTC/USDT:USDT", "1h", start, end, **kw)
            funding_count, funding_file = await update_funding(
                client, tmp_path, exchange_id, "BTC/USDT:USDT", start, end, **kw)
            again = await update_open_interest(client, tmp_path, exchange_id, "BTC/USDT:USDT",
                                               "1h", start, end, **kw)
        finally:
            await client.close()
        oi_ts, oi = ex.rest.derivs.oi_of("BTCUSDT")
        funding_ts, rates = ex.rest.derivs.funding_of("BTCUSDT")
        requests = [r for r in ex.rest_requests if r.path in (oi_path_name, funding_path_name)]
        assert ex.unknown_routes == []
    hourly = (oi_ts % HOUR == 0) & (oi_ts >= start) & (oi_ts < end)
    stored_ts, stored = read_series(oi_file, "open_interest")
    assert oi_file.name == f"{exchange_id}_BTC-USDT-USDT_1h.oi.parquet"
    assert oi_count == 1100 and stored_ts.tolist() == oi_ts[hourly].tolist()
    assert stored.tolist() == pytest.approx(oi[hourly].tolist(), rel=1e-12)
    window = (funding_ts >= start) & (funding_ts < end)
    assert funding_count == window.sum() == 137 and funding_file.name.endswith(".funding.parquet")
    assert read_series(funding_file, "funding")[1].tolist() == rates[window].tolist()
    limit = 200 if exchange_id == "bybit" else 500  # open interest rows per request
    funding_pages = -(-1100 // (200 if exchange_id == "bybit" else 1000))  # windows of limit h
    oi_requests = [r for r in requests if r.path == oi_path_name]
    assert len(oi_requests) == -(-1100 // limit) + 1  # the rate-limited first one was retried
    assert oi_requests[0].query == oi_requests[1].query  # the same window, asked again
    assert oi_requests[0].status == (200 if exchange_id == "bybit" else 429)  # Bybit: retCode
    assert len(requests) - len(oi_requests) == funding_pages
    assert again == (0, oi_file)  # only what is missing is fetched


async def test_cli_fetches_history_and_backtests_oi_divergence(capsys, monkeypatch, tmp_path):
    frame = pd.read_parquet(SAMPLE_DATA / "binance_BTC-USDT_1h.parquet")
    first = int(np.searchsorted(frame.timestamp, JAN_2018))
    series = CandleSeries.from_parquet(SAMPLE_DATA / "binance_BTC-USDT_1h.parquet", "BTC/USDT",
                                       "1h", start=first, count=1500, cursor=1500)
    cache = str(tmp_path / "cache")
    async with ExchangeStandin([series]) as ex:
        monkeypatch.setenv("PAPERBOT_LIVE_EXCHANGE", "bybit")
        monkeypatch.setenv("PAPERBOT_EXCHANGE_REST_URL", ex.rest_url)
        fetch = ["data", "fetch", "--exchange", "bybit", "--timeframe", "1h", "--start",
                 "2018-01-01", "--end", "2018-02-28", "--data-dir", cache, "--open-interest",
                 "--funding"]
        spot = await asyncio.wait_for(asyncio.to_thread(main, [*fetch, "--symbol", "BTC/USDT"]),
                                      timeout=60)
        _, spot_err = capsys.readouterr()
        code = await asyncio.wait_for(asyncio.to_thread(main, [*fetch, "--symbol",
                                                              "BTC/USDT:USDT"]), timeout=60)
        oi_ts, _ = ex.rest.derivs.oi_of("BTCUSDT")
        funding_ts, _ = ex.rest.derivs.funding_of("BTCUSDT")
    out, err = capsys.readouterr()
    assert spot == 2 and spot_err.startswith("error: --open-interest and --funding are for "
                                             "perpetuals: use --symbol BTC/USDT:USDT")
    assert code == 0, err
    march = JAN_2018 + 59 * 24 * HOUR  # --end 2018-02-28 includes that day
    n_candles = int(((series.ts >= JAN_2018) & (series.ts < march)).sum())  # real data: gaps
    n_funding = int(((funding_ts >= JAN_2018) & (funding_ts < march)).sum())
    assert n_candles > 1300 and n_funding == 59 * 3 - 1  # from 08:00 on the first day
    assert ((oi_ts >= JAN_2018) & (oi_ts < march) & (oi_ts % HOUR == 0)).sum() == 59 * 24
    assert out.splitlines() == [
        f"fetched {n_candles:,} candles into {cache}/bybit_BTC-USDT-USDT_1h.parquet",
        f"fetched 1,416 open interest samples into {cache}/bybit_BTC-USDT-USDT_1h.oi.parquet",
        f"fetched {n_funding} funding rates into {cache}/bybit_BTC-USDT-USDT.funding.parquet"]
    assert main(["data", "list", "--json", "--data-dir", cache]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(e["kind"], e["symbol"], e["timeframe"], e["rows"]) for e in listed] == [
        ("candles", "BTC/USDT:USDT", "1h", n_candles),
        ("open_interest", "BTC/USDT:USDT", "1h", 1416),
        ("funding", "BTC/USDT:USDT", "8h", n_funding)]
    code = await asyncio.wait_for(asyncio.to_thread(main, [
        "backtest", "--strategy", "oi_divergence", "--symbol", "BTC/USDT:USDT", "--exchange",
        "bybit", "--timeframe", "1h", "--data-dir", cache, "--offline", "--no-charts",
        "--json"]), timeout=60)
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    trades = result["trades"]
    assert result["metrics"]["num_trades"] == len(trades) >= 5
    assert {t["exit_reason"] for t in trades} <= {"stop_loss", "take_profit", "time_exit",
                                                 "end_of_data"}
    assert result["warnings"] == []  # open interest and funding were there


# ---- Binance public-data import -----------------------------------------------------------------

def test_import_binance_metrics_and_funding_rate_files(capsys, tmp_path):
    metrics = io.StringIO()
    metrics.write("create_time,symbol,sum_open_interest,sum_open_interest_value,"
                  "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,"
                  "count_long_short_ratio,sum_taker_long_short_vol_ratio\n")
    for k in range(288):  # one day, every 5 minutes
        stamp = pd.Timestamp(T0 + k * 5 * MIN, unit="ms").strftime("%Y-%m-%d %H:%M:%S")
        metrics.write(f"{stamp},BTCUSDT,{80000 + k}.125,{(80000 + k) * 42000.5},"
                      "1.1,1.2,1.3,0.9\n")
    with zipfile.ZipFile(tmp_path / "BTCUSDT-metrics-2024-01-01.zip", "w") as archive:
        archive.writestr("BTCUSDT-metrics-2024-01-01.csv", metrics.getvalue())
    (tmp_path / "BTCUSDT-fundingRate-2024-01.csv").write_text(
        "calc_time,funding_interval_hours,last_funding_rate\n"
        f"{T0 + 7},8,0.00010000\n{T0 + 8 * HOUR + 3},8,-0.00002500\n"
        f"{T0 + 16 * HOUR + 1},8,0.00037500\n")
    cache = tmp_path / "cache"
    for name in ("BTCUSDT-metrics-2024-01-01.zip", "BTCUSDT-fundingRate-2024-01.csv"):
        assert main(["data", "import", str(tmp_path / name), "--exchange", "binance",
                     "--symbol", "BTC/USDT:USDT", "--timeframe", "5m",
                     "--data-dir", str(cache)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"imported 288 open interest samples into {cache}/binance_BTC-USDT-USDT_5m.oi.parquet",
        f"imported 3 funding rates into {cache}/binance_BTC-USDT-USDT.funding.parquet"]
    oi_ts, oi = read_series(oi_path(cache, "binance", "BTC/USDT", "5m"), "open_interest")
    assert oi_ts.tolist() == (T0 + 5 * MIN * np.arange(288)).tolist()
    assert oi[[0, 287]].tolist() == [80000.125, 80287.125]
    ts, rates = read_series(funding_path(cache, "binance", "BTC/USDT"), "funding")
    assert ts.tolist() == [T0, T0 + 8 * HOUR, T0 + 16 * HOUR]  # calc_time floored to the second
    assert rates.tolist() == [0.0001, -0.000025, 0.000375]
    # a 1h backtest reads them: the 00:00 hour closes at 01:00 with the 01:00 sample
    write_candles(cache_path(cache, "binance", "BTC/USDT:USDT", "1h"),
                  candles([(100, 101, 99, 100)] * 24).to_frame())
    found, source = CandleLoader(cache).load("binance", "BTC/USDT:USDT", "1h")
    loaded = load_perp_inputs(cache, "binance", "BTC/USDT:USDT", "1h", found, source).inputs
    assert loaded.open_interest[:2].tolist() == [80012.125, 80024.125]
    assert loaded.funding_rate[[0, 6, 7, 15, 23]].tolist() == [0.0001, 0.0001, -0.000025,
                                                               0.000375, 0.000375]
    spot = load_perp_inputs(cache, "binance", "BTC/USDT", "1h", found, source).inputs
    assert np.isnan(spot.open_interest).all()  # spot has no open interest of its own


# ---- the live path ---------------------------------------------------------------------------

def test_forward_runs_read_perpetual_inputs_without_pandas():
    code = """
import sys
import numpy as np
import data.perp_fetch, engine.forward.engine, engine.service, strategies.oi_divergence
from data.ohlcv import OHLCV
from data.perp import PerpPoint
from engine.market import MarketData
from engine.types import Candle
from strategies.oi_divergence import OiDivergence
n, t0 = 30, 1_704_067_200_000
ts = t0 + 3_600_000 * np.arange(n, dtype=np.int64)
close = 100.0 + np.arange(n)
market = MarketData("BTC/USDT:USDT", "1h", OHLCV(ts, close, close + 1, close - 1, close,
                    np.ones(n)), ["4h"], mirror=False)
market.go_live()
strategy = OiDivergence({"lookback": 2})
strategy.bind(market)
for k in range(5):
    t = int(ts[-1]) + 3_600_000 * (k + 1)
    market.append(Candle(t, 130.0 + k, 131.0 + k, 129.0 + k, 129.5 + k, 2.0),
                  PerpPoint(1000.0 + 50 * k, 0.0001, 0.5))
assert market.base.open_interest[-1] == 1200.0 and market.base.cvd_source == "approx"
assert strategy.oi_change[-1] == 100 * (1200 / 1100 - 1)
loaded = sorted(m for m in ("pandas", "pyarrow", "matplotlib") if m in sys.modules)
print(loaded)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
