"""Filling the candle cache from the exchange: fetch only the spans it lacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data.cache import cache_path, merge_candles, read_candles
from data.gaps import missing_spans
from data.history import fetch_ohlcv_range


async def update_cache(exchange: Any, data_dir: Path, exchange_id: str, symbol: str,
                       timeframe: str, start: int, end: int, **kwargs: Any) -> tuple[int, Path]:
    """Fetch only the spans of ``[start, end)`` missing from the cache and merge them in.

    Returns:
        (candles fetched, cache file path).

    Raises:
        FetchError: as ``fetch_ohlcv_range``; what was fetched before the error is kept.
    """
    path = cache_path(data_dir, exchange_id, symbol, timeframe)
    stored = read_candles(path, start, end)["timestamp"].to_numpy()
    fetched = 0
    for lo, hi in missing_spans(np.asarray(stored), timeframe, start, end):
        candles = await fetch_ohlcv_range(exchange, symbol, timeframe, lo, hi, **kwargs)
        if len(candles):
            merge_candles(path, candles.to_frame())
            fetched += len(candles)
    return fetched, path
