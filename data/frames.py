"""The candle frame (pandas): column schema and validation.

A candle frame is a ``pandas.DataFrame`` with exactly the columns
``timestamp, open, high, low, close, volume``: ``timestamp`` is int64 ms UTC of the candle's
open, the rest float64 (prices in quote currency, volume in base units). Rows are sorted by
``timestamp``, strictly increasing. One optional column may follow: ``taker_buy_volume``
(float64, base units bought by takers during the candle, NaN where unknown), which Binance
klines carry and the cache keeps (CVD from taker flow, see ``data.perp``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.ohlcv import OHLCV, OHLCV_COLUMNS, Candle

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
#: The optional candle column: base volume bought by takers (market buys) during the candle.
TAKER_BUY_VOLUME = "taker_buy_volume"


class CandleDataError(ValueError):
    """Candles that break the frame contract (columns, types, order, prices)."""


def empty_frame() -> pd.DataFrame:
    """A frame with the OHLCV columns and no rows."""
    return normalize_frame(pd.DataFrame({c: [] for c in OHLCV_COLUMNS}))


def normalize_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with the OHLCV columns (plus ``taker_buy_volume`` when present), in
    order and with the contract's dtypes.

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
        if TAKER_BUY_VOLUME in frame.columns:
            out[TAKER_BUY_VOLUME] = frame[TAKER_BUY_VOLUME].to_numpy().astype("float64")
    except (TypeError, ValueError) as exc:
        raise CandleDataError(f"candle values are not numeric: {exc}") from exc
    return out


def validate_frame(frame: pd.DataFrame) -> None:
    """Check the contract: no NaN, strictly increasing timestamps, positive, coherent prices;
    a taker buy volume, where known, between 0 and the candle's volume.

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
    if TAKER_BUY_VOLUME in frame.columns:
        taker = frame[TAKER_BUY_VOLUME].to_numpy()
        volume = frame["volume"].to_numpy()
        # a relative tolerance: exchanges round both volumes on their own
        wrong = (taker < 0) | (taker > volume * (1 + 1e-9) + 1e-12)
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            raise CandleDataError(f"candle at {int(ts[i])} has a taker buy volume {taker[i]} "
                                  f"outside 0 … its volume {volume[i]}")


__all__ = ["OHLCV", "OHLCV_COLUMNS", "PRICE_COLUMNS", "TAKER_BUY_VOLUME", "Candle",
           "CandleDataError", "empty_frame", "normalize_frame", "validate_frame"]
