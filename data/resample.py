"""Resampling candles to a higher timeframe.

Bins are closed on the left and labelled by their open time (DESIGN §2): the 1h candle labelled
10:00 aggregates the 1m candles 10:00 … 10:59. Open is the first open, high the max, low the
min, close the last close, volume the sum. Nothing is invented: an empty bin yields no candle.
"""

from __future__ import annotations

import numpy as np

from data.ohlcv import OHLCV
from data.timeframes import TimeframeError, bucket_origin, is_multiple, timeframe_ms


def bin_starts(timestamps: np.ndarray, timeframe: str) -> np.ndarray:
    """Open time of the ``timeframe`` bucket holding each timestamp (int64 ms, same shape)."""
    step = timeframe_ms(timeframe)
    origin = bucket_origin(timeframe)
    ts = np.asarray(timestamps, dtype=np.int64)
    return ts - (ts - origin) % step


def resample(candles: OHLCV, source_timeframe: str, target_timeframe: str,
             complete_only: bool = False) -> OHLCV:
    """Aggregate ``candles`` of ``source_timeframe`` into ``target_timeframe`` candles.

    Args:
        candles: sorted source candles.
        source_timeframe: their timeframe.
        target_timeframe: a whole multiple of ``source_timeframe``.
        complete_only: keep only bins that hold every source candle (used where a partial
            bin at the edge of a download would mislead).

    Raises:
        TimeframeError: when the target is not a whole multiple of the source.
    """
    if not is_multiple(target_timeframe, source_timeframe):
        raise TimeframeError(
            f"cannot build {target_timeframe} candles from {source_timeframe} candles"
        )
    if len(candles) == 0 or target_timeframe == source_timeframe:
        return candles
    labels = bin_starts(candles.timestamp, target_timeframe)
    first = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    last = np.r_[first[1:] - 1, len(labels) - 1]
    out = OHLCV(
        timestamp=labels[first],
        open=candles.open[first],
        high=np.maximum.reduceat(candles.high, first),
        low=np.minimum.reduceat(candles.low, first),
        close=candles.close[last],
        volume=np.add.reduceat(candles.volume, first),
    )
    if complete_only:
        per_bin = timeframe_ms(target_timeframe) // timeframe_ms(source_timeframe)
        keep = (last - first + 1) == per_bin
        out = OHLCV(*(col[keep] for col in (out.timestamp, out.open, out.high, out.low,
                                            out.close, out.volume)))
    return out
