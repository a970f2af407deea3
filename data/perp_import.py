"""Importing Binance public-data open interest and funding files (data.binance.vision).

Recognised by their header (CSV, or a ``.zip`` holding one CSV, as downloaded):

* USDⓈ-M daily ``metrics`` (``futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-YYYY-MM-DD.zip``):
  ``create_time, symbol, sum_open_interest, sum_open_interest_value,
  count_toptrader_long_short_ratio, sum_toptrader_long_short_ratio, count_long_short_ratio,
  sum_taker_long_short_vol_ratio``, one row every 5 minutes, ``create_time`` a UTC date-time
  (``2024-01-15 00:05:00``). ``sum_open_interest`` (base units) is stored; the sampling period
  is the file's median spacing (5m).
* USDⓈ-M monthly ``fundingRate`` (``futures/um/monthly/fundingRate/BTCUSDT/
  BTCUSDT-fundingRate-YYYY-MM.zip``): ``calc_time, funding_interval_hours,
  last_funding_rate``, ``calc_time`` in ms UTC (a few ms after the settlement: floored to the
  second when stored).

Both are stored for the pair's perpetual (``data.perp_store``); ``--timeframe`` does not apply.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data.frames import CandleDataError
from data.perp_store import (
    FUNDING,
    OPEN_INTEREST,
    funding_path,
    interval_name,
    merge_series,
    oi_path,
)
from data.timeframes import MINUTE_MS

_HEADERS = {
    OPEN_INTEREST: ("create_time", "sum_open_interest"),
    FUNDING: ("calc_time", "last_funding_rate"),
}


def sniff_kind(path: Path) -> str | None:
    """``"open_interest"`` for a metrics file, ``"funding"`` for a fundingRate file, None for
    anything else (candles). Reads the first line only."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".csv", ".zip", ".gz", ".txt"):
        return None
    try:
        head = pd.read_csv(path, nrows=0)
    except (ValueError, OSError, UnicodeDecodeError):
        return None
    names = {str(c).strip().lower() for c in head.columns}
    for kind, needed in _HEADERS.items():
        if set(needed) <= names:
            return kind
    return None


def read_perp_file(path: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(times, int64 ms UTC; values, float64) of a metrics or fundingRate file, sorted.

    Raises:
        CandleDataError: a value that is not a number or a time that does not parse.
    """
    from data.importer import to_epoch_ms

    frame = pd.read_csv(path)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    time_col, value_col = _HEADERS[kind]
    try:
        ts = to_epoch_ms(frame[time_col])
    except (ValueError, TypeError) as exc:
        raise CandleDataError(f"{Path(path).name}: {time_col} does not parse as a time: "
                              f"{exc}") from None
    values = pd.to_numeric(frame[value_col], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        row = int(np.flatnonzero(np.isnan(values))[0])
        raise CandleDataError(f"{Path(path).name}: {value_col} is not a number in row "
                              f"{row + 2}")
    if kind == OPEN_INTEREST:
        ts = ts - ts % MINUTE_MS  # samples are on the minute; drop stray seconds
    order = np.argsort(ts, kind="stable")
    return ts[order], values[order]


def import_perp_file(path: Path, data_dir: Path, exchange: str, symbol: str,
                     kind: str) -> tuple[int, Path]:
    """Store a metrics (open interest) or fundingRate file for ``symbol``'s perpetual.

    Returns:
        (rows imported, file written).

    Raises:
        CandleDataError: an empty or unreadable file, or one whose values break the format.
    """
    ts, values = read_perp_file(path, kind)
    if not len(ts):
        raise CandleDataError(f"{Path(path).name} holds no rows")
    if kind == OPEN_INTEREST:
        spacing = np.diff(np.unique(ts))
        period = interval_name(int(np.median(spacing))) if len(spacing) else "5m"
        target = oi_path(data_dir, exchange, symbol, period)
    else:
        target = funding_path(data_dir, exchange, symbol)
    try:
        merge_series(target, kind, ts, values)
    except OSError as exc:
        raise CandleDataError(f"cannot write {target}: {exc.strerror or exc}") from None
    return len(ts), target
