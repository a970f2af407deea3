"""Shared helpers of the benchmarks: the real 1m candle year, peak memory."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import numpy as np

from data.ohlcv import OHLCV

SHARED_DATA = Path(os.environ.get("PAPERBOT_SAMPLE_DATA") or
                   Path(__file__).resolve().parents[1].parent / "shared" / "data")
YEAR_OF_MINUTES = 525_600
START = 1_577_836_800_000  # 2020-01-01 00:00 UTC: the synthetic timeline's origin


def joined_minutes(n: int = YEAR_OF_MINUTES, symbol: str = "BTC-USDT") -> OHLCV:
    """``n`` real 1m candles: every real BTC/USDT 1m window end to end, in time order.

    Timestamps are rewritten to ``START + i × 1 min`` so the series is contiguous; prices are
    untouched, so the joins between windows are price jumps (as a weekend gap would be).
    """
    import pandas as pd  # only here: bench/forward_latency.py's engine child stays pandas-free

    files = sorted(SHARED_DATA.glob(f"windows/binance_{symbol}_1m_*.parquet"))
    files.append(SHARED_DATA / f"binance_{symbol}_1m.parquet")
    frames = [pd.read_parquet(f) for f in files]
    frame = pd.concat(sorted(frames, key=lambda f: int(f.timestamp.iloc[0])), ignore_index=True)
    if len(frame) < n:
        raise SystemExit(f"only {len(frame)} real 1m candles found under {SHARED_DATA}")
    frame = frame.iloc[:n].copy()
    frame["timestamp"] = START + 60_000 * np.arange(n, dtype=np.int64)
    return OHLCV.from_frame(frame)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
