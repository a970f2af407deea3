"""Resampling 1m → higher timeframes, and loading through the cache."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.cache import cache_path, write_candles
from data.loader import CandleLoader
from data.resample import resample
from tests.helpers import MIN, SAMPLE_DATA, T0, candles


def test_resample_exact_ohlcv():
    rows = [(10, 12, 9, 11), (11, 15, 10, 14), (14, 14, 8, 9), (9, 10, 9, 10), (10, 11, 9, 10),
            (20, 21, 19, 20)]
    one = candles(rows, step=MIN)
    five = resample(one, "1m", "5m")
    assert five.timestamp.tolist() == [T0, T0 + 5 * MIN]
    assert five.open.tolist() == [10, 20]
    assert five.high.tolist() == [15, 21]
    assert five.low.tolist() == [8, 19]
    assert five.close.tolist() == [10, 20]
    assert five.volume.tolist() == [5.0, 1.0]


def test_empty_bins_yield_no_candle():
    one = candles([(1, 1, 1, 1)] * 2, step=MIN)
    later = candles([(2, 2, 2, 2)], start=T0 + 20 * MIN, step=MIN)
    both = one.__class__(*(np.concatenate((getattr(one, c), getattr(later, c)))
                           for c in ("timestamp", "open", "high", "low", "close", "volume")))
    assert resample(both, "1m", "5m").timestamp.tolist() == [T0, T0 + 20 * MIN]


def test_loader_builds_missing_timeframe_and_drops_partial_edge_bins(tmp_path):
    # 1m candles from 00:30 to 02:29: the 00:00 and 02:00 hours are partial
    one = candles([(1, 2, 0.5, 1.5)] * 120, start=T0 + 30 * MIN, step=MIN)
    write_candles(cache_path(tmp_path, "binance", "BTC/USDT", "1m"), one.to_frame())
    hourly, source = CandleLoader(tmp_path).load("binance", "BTC/USDT", "1h")
    assert source.timeframe == "1m"
    assert hourly.timestamp.tolist() == [T0 + 60 * MIN]
    assert hourly.volume.tolist() == [60.0]


def test_real_1m_aggregates_to_the_independent_real_5m_download():
    loader = CandleLoader(SAMPLE_DATA)
    start = 1_747_699_200_000  # 2025-05-20
    end = start + 3 * 86_400_000
    built = resample(loader.load("binance", "BTC/USDT", "1m", start, end)[0], "1m", "5m")
    stored = pd.read_parquet(SAMPLE_DATA / "binance_BTC-USDT_5m.parquet")
    stored = stored[(stored.timestamp >= start) & (stored.timestamp < end)]
    assert built.timestamp.tolist() == stored.timestamp.tolist()
    np.testing.assert_allclose(built.close, stored.close.to_numpy())
    np.testing.assert_allclose(built.high, stored.high.to_numpy())
    np.testing.assert_allclose(built.volume, stored.volume.to_numpy(), rtol=1e-9)
