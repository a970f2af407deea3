"""Candles without pandas: one ``Candle``, or ``OHLCV`` numpy columns.

Long-running processes (forward runs, the bot) use these; the pandas candle frame lives in
``data.frames`` and is loaded only where files are read or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

OHLCV_COLUMNS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV candle. ``timestamp``: open time, ms UTC; prices quote; volume base units."""

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class OHLCV:
    """Candles as numpy columns, each of shape ``(n,)``; newest last.

    ``timestamp`` is int64 ms UTC candle open time; prices float64 in quote currency;
    ``volume`` float64 in base units.
    """

    timestamp: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def from_frame(cls, frame: Any) -> OHLCV:
        """Columns of a candle frame (no copy where the dtypes already match)."""
        return cls(
            timestamp=np.ascontiguousarray(frame["timestamp"].to_numpy(), dtype=np.int64),
            **{
                c: np.ascontiguousarray(frame[c].to_numpy(), dtype=np.float64)
                for c in OHLCV_COLUMNS[1:]
            },
        )

    @classmethod
    def empty(cls) -> OHLCV:
        """No candles."""
        return cls(np.empty(0, dtype=np.int64), *(np.empty(0) for _ in range(5)))

    def __len__(self) -> int:
        return int(self.timestamp.shape[0])

    def to_frame(self) -> Any:
        """A candle frame (``pandas.DataFrame``) holding copies of these columns."""
        import pandas as pd  # pandas stays out of processes that never build frames

        return pd.DataFrame({c: getattr(self, c).copy() for c in OHLCV_COLUMNS})

    def between(self, start: int | None, end: int | None) -> OHLCV:
        """Candles whose open time is in ``[start, end)`` (either bound may be None)."""
        lo = 0 if start is None else int(np.searchsorted(self.timestamp, start, "left"))
        hi = len(self) if end is None else int(np.searchsorted(self.timestamp, end, "left"))
        return self.take(slice(lo, hi))

    def take(self, index: slice) -> OHLCV:
        """A view of the rows selected by ``index`` (a slice)."""
        return OHLCV(*(getattr(self, c)[index] for c in OHLCV_COLUMNS))
