"""A finished backtest frees its arrays at once: nothing in it forms a reference cycle, which
would hold the candles and indicators until Python's next full garbage collection (a
backtest worker running one backtest after another then grows by a backtest each time)."""

from __future__ import annotations

import gc

import numpy as np

from data.frames import OHLCV
from engine.backtest import BacktestConfig, run_backtest
from engine.market import MarketData
from engine.registry import discover


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
            assert gc.collect() == 0, f"{name}: the backtest left reference cycles"
        # a forward run's market (readers without list mirrors) too
        market = MarketData("BTC/USDT", "1h", candles, ["4h"], mirror=False)
        market.go_live()
        del market
        assert gc.collect() == 0, "a live MarketData left reference cycles"
    finally:
        gc.enable()
    assert traded["sma_cross"] > 0 and traded["rsi_reversion"] > 0
