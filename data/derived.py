"""Derived series: cumulative volume delta (CVD) and open interest aligned to candles.

CVD here is the candle approximation: each candle's whole volume counts as bought when it closed
up and sold when it closed down, ``cvd_i = Σ_{k≤i} volume_k × sign(close_k − open_k)``. True
CVD needs every trade's aggressor side; this proxy is what candles allow.

Open interest (contracts outstanding, in base units) comes from ccxt's
``fetch_open_interest_history`` on exchanges that offer it (perpetual markets, e.g.
``binanceusdm``, ``bybit`` linear) and is stored next to the candle cache as
``{exchange}_{BASE}-{QUOTE}_{timeframe}.oi.parquet`` (columns ``timestamp, open_interest``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.cache import cache_path, write_table
from data.history import call_with_retry
from data.timeframes import timeframe_ms


def cvd(open_: np.ndarray, close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """Cumulative volume delta proxy (base units), shape ``(n,)``; see the module docstring."""
    open_, close, volume = (np.asarray(a, dtype=np.float64) for a in (open_, close, volume))
    return np.cumsum(volume * np.sign(close - open_))


def add_cvd(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a candle frame with a ``cvd`` column appended."""
    out = frame.copy()
    out["cvd"] = cvd(frame["open"].to_numpy(), frame["close"].to_numpy(),
                     frame["volume"].to_numpy())
    return out


def align_open_interest(candle_ts: np.ndarray, timeframe: str, oi_ts: np.ndarray,
                        oi_values: np.ndarray, max_age: int | None = None) -> np.ndarray:
    """Open interest known at each candle's close, shape ``(len(candle_ts),)``.

    For the candle opening at ``t`` (closing at ``t + tf``) the value is the newest observation
    with timestamp ``< t + tf``: it happened inside or before the candle, so it is known when the
    candle closes — no look-ahead. Observations older than ``max_age`` ms before the close
    (default: two candles) give ``nan``, as does having none.

    Args:
        candle_ts: candle open times, ms UTC, sorted.
        timeframe: the candles' timeframe.
        oi_ts: observation times, ms UTC, sorted.
        oi_values: open interest at those times (base units).
    """
    step = timeframe_ms(timeframe)
    max_age = 2 * step if max_age is None else max_age
    closes = np.asarray(candle_ts, dtype=np.int64) + step
    oi_ts = np.asarray(oi_ts, dtype=np.int64)
    oi_values = np.asarray(oi_values, dtype=np.float64)
    idx = np.searchsorted(oi_ts, closes, side="left") - 1
    out = np.full(closes.shape, np.nan)
    ok = idx >= 0
    out[ok] = oi_values[idx[ok]]
    stale = ok & (closes - oi_ts[np.clip(idx, 0, None)] > max_age)
    out[stale] = np.nan
    return out


def oi_path(data_dir: Path, exchange: str, symbol: str, timeframe: str) -> Path:
    """Where open interest for the candles of ``exchange/symbol/timeframe`` is stored."""
    return cache_path(data_dir, exchange, symbol, timeframe).with_suffix(".oi.parquet")


async def fetch_open_interest(exchange: Any, symbol: str, timeframe: str, since: int,
                              until: int, limit: int = 500) -> pd.DataFrame:
    """Open interest history in ``[since, until)`` (columns ``timestamp, open_interest``).

    Raises:
        NotImplementedError: when the exchange does not offer open interest history.
        data.history.FetchError: when requests fail after retries.
    """
    if not getattr(exchange, "has", {}).get("fetchOpenInterestHistory"):
        raise NotImplementedError(f"{exchange.id} offers no open interest history")
    step = timeframe_ms(timeframe)
    rows: list[tuple[int, float]] = []
    cursor = since
    for _ in range(max(0, (until - since) // step) + 1):
        if cursor >= until:
            break
        batch = await call_with_retry(
            lambda c=cursor: exchange.fetch_open_interest_history(
                symbol, timeframe, since=c, limit=limit,
                params={"until": min(until, c + limit * step) - 1}),
            what=f"{exchange.id} {symbol} open interest",
        )
        points = [(int(b["timestamp"]), float(b.get("openInterestAmount") or
                                               b.get("openInterestValue") or "nan"))
                  for b in batch or [] if cursor <= int(b["timestamp"]) < until]
        if not points:
            cursor += limit * step
            continue
        rows.extend(points)
        cursor = points[-1][0] + step
    frame = pd.DataFrame(rows, columns=["timestamp", "open_interest"])
    return frame.drop_duplicates("timestamp").sort_values("timestamp").reset_index(drop=True)


def store_open_interest(frame: pd.DataFrame, data_dir: Path, exchange: str, symbol: str,
                        timeframe: str) -> Path:
    """Merge ``frame`` into the stored open interest file (atomic write); returns its path."""
    path = oi_path(data_dir, exchange, symbol, timeframe)
    if path.exists():
        frame = pd.concat([pd.read_parquet(path), frame], ignore_index=True)
        frame = frame.drop_duplicates("timestamp", keep="last").sort_values("timestamp")
    write_table(path, frame.reset_index(drop=True))
    return path


def load_open_interest(data_dir: Path, exchange: str, symbol: str,
                       timeframe: str) -> pd.DataFrame | None:
    """The stored open interest for these candles, or None."""
    path = oi_path(data_dir, exchange, symbol, timeframe)
    return pd.read_parquet(path) if path.exists() else None
