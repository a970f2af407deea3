"""A finished backtest frees its arrays at once: nothing in it forms a reference cycle, which
would hold the candles and indicators until Python's next full garbage collection (a
backtest worker running one backtest after another then grows by a backtest each time)."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np

from data.frames import OHLCV
from engine.backtest import BacktestConfig, run_backtest
from engine.market import MarketData
from engine.registry import discover

REPO = str(Path(__file__).resolve().parents[1])


def cycles_of_ours() -> list[str]:
    """Collect garbage; the unreachable objects made by paperbot's code (its classes, or
    functions and frames of its files). Garbage that other threads of the test process make
    meanwhile (a pool or an event loop of an earlier test winding down) is not counted."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = []
        for obj in gc.garbage:
            module = getattr(type(obj), "__module__", "") or ""
            code = getattr(obj, "__code__", None) or getattr(obj, "f_code", None)
            if module.split(".")[0] in ("engine", "data", "strategies") \
                    or getattr(code, "co_filename", "").startswith(REPO):
                found.append(f"{type(obj).__qualname__} ({module})")
        return found
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_no_reference_cycles_are_left_by_any_bundled_strategy():
    n = 3_000
    ts = 1_704_067_200_000 + 3_600_000 * np.arange(n, dtype=np.int64)
    close = 100.0 + 10 * np.sin(np.arange(n) / 7)
    candles = OHLCV(ts, close, close + 0.3, close - 0.3, close, np.ones(n))
    gc.collect()
    gc.disable()
    try:
        traded = {}
        for name, info in sorted(discover().items()):
            symbol = "BTC/USDT:USDT" if name == "oi_divergence" else "BTC/USDT"
            result = run_backtest(info.cls({}, timeframe="1h"), candles,
                                  BacktestConfig(symbol, "1h"))
            traded[name] = len(result.trades)
            del result
            assert cycles_of_ours() == [], f"{name}: the backtest left reference cycles"
        # a forward run's market (readers without list mirrors) too
        market = MarketData("BTC/USDT", "1h", candles, ["4h"], mirror=False)
        market.go_live()
        del market
        assert cycles_of_ours() == [], "a live MarketData left reference cycles"
    finally:
        gc.enable()
    assert traded["sma_cross"] > 0 and traded["rsi_reversion"] > 0
