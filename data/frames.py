"""The candle frame: column schema, validation, and a numpy column view.

A candle frame is a ``pandas.DataFrame`` with exactly the columns
``timestamp, open, high, low, close, volume``: ``timestamp`` is int64 ms UTC of the candle's
open, the rest float64 (prices in quote currency, volume in base units). Rows are sorted by
``timestamp``, strictly increasing. Optional derived columns (e.g. ``cvd``) may follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

OHLCV_COLUMNS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")


class CandleDataError(ValueError):
    """Candles that break the frame contract (columns, types, order, prices)."""


def empty_frame() -> pd.DataFrame:
    """A frame with the OHLCV columns and no rows."""
    return normalize_frame(pd.DataFrame({c: [] for c in OHLCV_COLUMNS}))


def normalize_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with the OHLCV columns only, in order and with the contract's dtypes.

    Raises:
        CandleDataError: when a column is missing or a value cannot be converted.
    """
    missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
    if missing:
        raise CandleDataError(
            f"candles lack column(s) {', '.join(missing)}; need {', '.join(OHLCV_COLUMNS)}"
        )
    try:
        out = pd.DataFrame(
            {
                "timestamp": frame["timestamp"].to_numpy().astype("int64"),
                **{c: frame[c].to_numpy().astype("float64") for c in OHLCV_COLUMNS[1:]},
            }
        )
    except (TypeError, ValueError) as exc:
        raise CandleDataError(f"candle values are not numeric: {exc}") from exc
    return out


def validate_frame(frame: pd.DataFrame) -> None:
    """Check the contract: no NaN, strictly increasing timestamps, positive, coherent prices.

    Raises:
        CandleDataError: naming the first offending row's timestamp.
    """
    if frame.empty:
        return
    values = frame[list(OHLCV_COLUMNS)]
    if values.isna().to_numpy().any():
        row = values[values.isna().any(axis=1)].iloc[0]
        raise CandleDataError(f"candle at {int(row['timestamp'])} has empty values")
    ts = frame["timestamp"].to_numpy()
    bad = np.flatnonzero(np.diff(ts) <= 0)
    if bad.size:
        raise CandleDataError(
            f"timestamps not strictly increasing at {int(ts[bad[0] + 1])} "
            f"(after {int(ts[bad[0]])})"
        )
    o, h, low, c = (frame[col].to_numpy() for col in PRICE_COLUMNS)
    broken = (low <= 0) | (h < np.maximum(o, c)) | (low > np.minimum(o, c))
    if broken.any():
        i = int(np.flatnonzero(broken)[0])
        raise CandleDataError(
            f"candle at {int(ts[i])} has inconsistent prices "
            f"(open {o[i]}, high {h[i]}, low {low[i]}, close {c[i]})"
        )


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
    def from_frame(cls, frame: pd.DataFrame) -> OHLCV:
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
        return cls.from_frame(empty_frame())

    def __len__(self) -> int:
        return int(self.timestamp.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """A candle frame holding copies of these columns."""
        return pd.DataFrame({c: getattr(self, c).copy() for c in OHLCV_COLUMNS})

    def between(self, start: int | None, end: int | None) -> OHLCV:
        """Candles whose open time is in ``[start, end)`` (either bound may be None)."""
        lo = 0 if start is None else int(np.searchsorted(self.timestamp, start, "left"))
        hi = len(self) if end is None else int(np.searchsorted(self.timestamp, end, "left"))
        return self.take(slice(lo, hi))

    def take(self, index: slice) -> OHLCV:
        """A view of the rows selected by ``index`` (a slice)."""
        return OHLCV(*(getattr(self, c)[index] for c in OHLCV_COLUMNS))
