"""The paperbot CLI: real backtests on the sample candles, JSON shape, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import SAMPLE_DATA, run_cli

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("cli_isolated")




def test_backtest_json_on_real_candles(capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "backtest", "--strategy", "sma_cross", "--symbol", "BTC/USDT",
        "--timeframe", "1h", "--data-dir", str(SAMPLE_DATA), "--out", str(tmp_path / "o"),
        "--json", "--offline")
    assert code == 0, err
    result = json.loads(out)
    assert set(result["metrics"]) >= {
        "total_return_pct", "cagr_pct", "max_drawdown_pct", "max_drawdown_start",
        "max_drawdown_end", "sharpe", "sortino", "calmar", "win_rate_pct", "profit_factor",
        "expectancy", "avg_win", "avg_loss", "best_trade_pct", "worst_trade_pct",
        "avg_duration_ms", "exposure_pct", "fees_paid", "num_trades",
        "buy_and_hold_return_pct"}
    trades = result["trades"]
    assert result["metrics"]["num_trades"] == len(trades) == 145
    assert set(trades[0]) == {"id", "side", "entry_time", "exit_time", "entry_price",
                              "exit_price", "size", "pnl", "fees", "exit_reason"}
    assert {t["exit_reason"] for t in trades} <= {"signal", "end_of_data"}
    assert result["final_equity"] == pytest.approx(10_000 + sum(t["pnl"] for t in trades))
    assert result["drill_down"] == {"resolved": 0, "conservative": 0}
    # the first fill is the signal candle's close plus the 10 bp taker fee on top
    raw = pd.read_parquet(SAMPLE_DATA / "binance_BTC-USDT_1h.parquet")
    signal_close = raw.loc[raw.timestamp == trades[0]["entry_time"] - 3_600_000, "close"].item()
    assert trades[0]["entry_price"] == signal_close  # default slippage is 0
    notional = trades[0]["entry_price"] * trades[0]["size"]
    assert notional == pytest.approx(10_000 * 0.95)
    for chart in result["charts"].values():
        assert Path(chart).read_bytes()[:8] == PNG_MAGIC
    csv = pd.read_csv(result["trades_csv"])
    assert len(csv) == 145 and np.allclose(csv["pnl"], [t["pnl"] for t in trades])


def test_backtest_human_summary_and_end_includes_the_day(capsys):
    code, out, _ = run_cli(
        capsys, "backtest", "--strategy", "sma_cross", "--symbol", "BTC/USDT",
        "--timeframe", "1h", "--start", "2019-01-01", "--end", "2019-01-31",
        "--data-dir", str(SAMPLE_DATA), "--no-charts", "--offline", "--param", "fast=5",
        "--param", "slow=20", "--slippage-bps", "5")
    assert code == 0
    assert "2019-01-01 00:00 → 2019-01-31 23:00 UTC" in out
    assert "Total return" in out and "Profit factor" in out and "slippage 5 bp" in out


@pytest.mark.parametrize("args,message", [
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--timeframe", "2x"], "unknown timeframe '2x'"),
    (["--start", "2019-13-01"], "bad start date '2019-13-01': use YYYY-MM-DD"),
    (["--start", "2019-02-01", "--end", "2019-01-01"], "is not before end"),
    (["--symbol", "BTCUSDT"], "not in BASE/QUOTE form"),
    (["--param", "fast=abc"], "fast takes int values"),
    (["--param", "speed=3"], "has no parameter 'speed'"),
    (["--symbol", "DOGE/USDT"], "no DOGE/USDT 1h candles for binance"),
    (["--start", "2030-01-01"], "no BTC/USDT 1h candles for binance between"),
])
def test_bad_input_is_one_clear_line_and_exit_2(capsys, args, message):
    base = {"--strategy": "sma_cross", "--symbol": "BTC/USDT", "--timeframe": "1h"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["backtest", *[x for kv in base.items() for x in kv],
            "--data-dir", str(SAMPLE_DATA), "--no-charts", "--offline"]
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag not in base:
            argv += [flag, value]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_candles_tell_how_to_get_them(capsys, tmp_path):
    code, _, err = run_cli(capsys, "backtest", "--strategy", "sma_cross", "--symbol",
                           "BTC/USDT", "--data-dir", str(tmp_path / "empty"), "--offline")
    assert code == 2
    assert "paperbot data fetch" in err and "paperbot data import" in err


def test_data_list_and_strategies(capsys):
    code, out, _ = run_cli(capsys, "data", "list", "--data-dir", str(SAMPLE_DATA), "--json")
    assert code == 0
    entries = {(e["symbol"], e["timeframe"]): e for e in json.loads(out)}
    assert entries[("BTC/USDT", "1h")]["rows"] == 24_083
    assert sum(g["missing"] for g in entries[("BTC/USDT", "1h")]["gaps"]) == 105
    code, out, _ = run_cli(capsys, "strategies")
    assert code == 0 and "sma_cross" in out and "fast=20" in out


def test_data_import_then_backtest(capsys, tmp_path):
    cache = tmp_path / "cache"
    code, out, err = run_cli(capsys, "data", "import",
                             str(SAMPLE_DATA / "binance_ETH-USDT_5m.parquet"), "--symbol",
                             "ETH/USDT", "--timeframe", "5m", "--data-dir", str(cache))
    assert code == 0, err
    assert "imported 52,416 candles" in out
    code, out, err = run_cli(capsys, "backtest", "--strategy", "rsi_reversion", "--symbol",
                             "ETH/USDT", "--timeframe", "1h", "--data-dir", str(cache),
                             "--json", "--no-charts", "--offline")
    assert code == 0, err
    assert json.loads(out)["candles"] == 52_416 // 12 - 42  # 1h built from 5m, minus warm-up


def test_installed_console_script_exits_2_without_traceback(tmp_path):
    exe = Path(sys.executable).with_name("paperbot")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOT_")}
    proc = subprocess.run([str(exe), "backtest", "--strategy", "sma_cross", "--symbol",
                           "BTC/USDT", "--start", "yesterday", "--offline"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: bad start date 'yesterday': use YYYY-MM-DD, " \
                                  "e.g. 2025-06-01"


def test_backtests_are_recorded_in_the_history_and_listed(capsys, tmp_path):
    import asyncio

    from engine.store.store import Store

    db = tmp_path / "runs.db"
    asyncio.run(Store.open(db)).db  # noqa: B018 - create the database
    common = ["--data-dir", str(SAMPLE_DATA), "--out", str(tmp_path / "o"), "--offline",
              "--db", str(db)]
    code, out, err = run_cli(capsys, "backtest", "--strategy", "rsi_reversion", "--symbol",
                             "BTC/USDT", "--start", "2019-05-01", "--end", "2019-05-31",
                             "--param", "oversold=35", *common)
    assert code == 0, err
    assert "CAGR                     — (< 90 days)" in out and "Sharpe (daily, ann.)" in out
    assert "exits: signal" in out
    code, listed, err = run_cli(capsys, "backtests", "--db", str(db))
    assert code == 0, err
    assert listed.startswith("#1    ") and "rsi_reversion" in listed and " cli" in listed
    code, shown, _ = run_cli(capsys, "backtests", "1", "--db", str(db), "--json")
    record = json.loads(shown)
    assert record["request"]["params"] == {"oversold": "35"}
    assert record["result"]["trades"] == record["result"]["metrics"]["num_trades"]
    assert record["result"]["metrics"]["short_window"] is True
    code, _, err = run_cli(capsys, "backtests", "7", "--db", str(db))
    assert code == 2 and err.startswith("error: no stored backtest #7; the newest are #1")
