"""Importing candle files (CSV or Parquet) into the cache.

Accepted layouts:

* a header with ``timestamp, open, high, low, close, volume`` (any case; ``date``, ``time``,
  ``open_time`` or ``datetime`` also name the time column, as numbers or date strings);
* Binance public-data kline CSV (data.binance.vision): no header, 12 columns
  ``open_time, open, high, low, close, volume, close_time, quote_volume, count,
  taker_buy_volume, taker_buy_quote_volume, ignore`` (some files carry that header);
* Parquet/Feather with those columns (e.g. Freqtrade downloads with a ``date`` column).

A ``taker_buy_volume`` column (the Binance layout's 10th; also ``taker_buy_base_volume``) is
kept: it lets strategies read CVD from taker flow (``data.perp``). Binance public-data open
interest (``metrics``) and funding (``fundingRate``) files are recognised by their header and
stored beside the candles instead (``data.perp_import``).

Epoch numbers are read as seconds, ms, µs or ns by magnitude (Binance spot files switched to
microseconds in 2025). Each row must sit on the timeframe's grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data.cache import cache_path, merge_candles
from data.frames import (
    OHLCV_COLUMNS,
    TAKER_BUY_VOLUME,
    CandleDataError,
    normalize_frame,
    validate_frame,
)
from data.timeframes import bucket_origin, timeframe_ms

_TIME_NAMES = ("timestamp", "open_time", "date", "time", "datetime", "opentime")
_TAKER_NAMES = (TAKER_BUY_VOLUME, "taker_buy_base_volume", "taker_buy_base_asset_volume")
_BINANCE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "close_time",
                    "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume",
                    "ignore")


def to_epoch_ms(values: pd.Series) -> np.ndarray:
    """Times as int64 ms UTC: epoch numbers in s/ms/µs/ns (by magnitude) or date strings."""
    if not pd.api.types.is_datetime64_any_dtype(values):
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all():
            raw = numeric.to_numpy(dtype=np.float64)
            top = np.nanmax(np.abs(raw)) if raw.size else 0
            scale = 1e-6 if top > 1e17 else 1e-3 if top > 1e14 else 1.0 if top > 1e11 else 1e3
            return np.round(raw * scale).astype(np.int64)
    stamps = pd.to_datetime(values, utc=True, errors="raise", format="mixed")
    return stamps.dt.as_unit("ms").astype("int64").to_numpy(dtype=np.int64)


def _from_table(frame: pd.DataFrame) -> pd.DataFrame:
    columns = {str(c).strip().lower(): c for c in frame.columns}
    time_col = next((columns[n] for n in _TIME_NAMES if n in columns), None)
    missing = [c for c in OHLCV_COLUMNS[1:] if c not in columns]
    if time_col is None or missing:
        raise CandleDataError(
            f"cannot find columns {'time, ' if time_col is None else ''}"
            f"{', '.join(missing)} in {list(frame.columns)}; expected timestamp, open, high, "
            "low, close, volume or the Binance kline CSV layout"
        )
    out = pd.DataFrame({"timestamp": to_epoch_ms(frame[time_col])})
    for c in OHLCV_COLUMNS[1:]:
        out[c] = pd.to_numeric(frame[columns[c]], errors="coerce")
    taker = next((columns[n] for n in _TAKER_NAMES if n in columns), None)
    if taker is not None:
        out[TAKER_BUY_VOLUME] = pd.to_numeric(frame[taker], errors="coerce")
    return out


def read_candle_file(path: Path) -> pd.DataFrame:
    """A CSV/Parquet/Feather file as a candle frame (sorted, duplicates dropped).

    Raises:
        CandleDataError: when the layout is not recognised, values are not numbers, or the
            path is a folder or cannot be read (permissions, I/O error).
        FileNotFoundError: when ``path`` does not exist.
    """
    path = Path(path)
    if path.is_dir():
        raise CandleDataError("it is a folder; give one CSV or Parquet file (import the "
                              "files of a folder one by one)")
    try:
        return _read_candle_file(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CandleDataError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_candle_file(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = _from_table(pd.read_parquet(path))
    elif suffix == ".feather":
        frame = _from_table(pd.read_feather(path))
    else:
        head = pd.read_csv(path, nrows=1, header=None)
        first = str(head.iloc[0, 0]).strip()
        has_header = not first.replace(".", "", 1).lstrip("-").isdigit()
        if not has_header and head.shape[1] >= 6:
            raw = pd.read_csv(path, header=None)
            raw.columns = list(_BINANCE_COLUMNS[: raw.shape[1]]) + \
                [f"extra{i}" for i in range(max(0, raw.shape[1] - len(_BINANCE_COLUMNS)))]
            frame = _from_table(raw)
        else:
            frame = _from_table(pd.read_csv(path))
    if frame.drop(columns="timestamp").isna().to_numpy().any():
        bad = frame[frame.isna().any(axis=1)].iloc[0]
        raise CandleDataError(f"{path.name}: non-numeric value in the row at {bad['timestamp']}")
    frame = normalize_frame(frame).drop_duplicates("timestamp", keep="last")
    return frame.sort_values("timestamp").reset_index(drop=True)


def check_grid(frame: pd.DataFrame, timeframe: str) -> None:
    """Raise ``CandleDataError`` when a timestamp is off the ``timeframe`` grid."""
    step = timeframe_ms(timeframe)
    off = (frame["timestamp"].to_numpy() - bucket_origin(timeframe)) % step != 0
    if off.any():
        ts = int(frame["timestamp"].to_numpy()[np.flatnonzero(off)[0]])
        raise CandleDataError(
            f"timestamp {ts} is not on the {timeframe} grid: is the file really {timeframe}?"
        )


def import_file(path: Path, data_dir: Path, exchange: str, symbol: str,
                timeframe: str) -> tuple[int, Path]:
    """Validate ``path`` and merge its candles into the cache; a Binance open interest
    (``metrics``) or ``fundingRate`` file goes to ``data.perp_import`` instead.

    Returns:
        (rows imported, path of the file written).

    Raises:
        CandleDataError: for an unreadable file, layout, values, order or grid, or a cache
            file that cannot be written; nothing is written then.
        ValueError: a bad exchange, symbol or timeframe name (see ``cache_path``), checked
            before the file is read.
        FileNotFoundError: when ``path`` does not exist.
    """
    target = cache_path(data_dir, exchange, symbol, timeframe)
    from data.perp_import import import_perp_file, sniff_kind

    kind = sniff_kind(path)
    if kind is not None:
        return import_perp_file(path, data_dir, exchange, symbol, kind)
    frame = read_candle_file(path)
    if frame.empty:
        raise CandleDataError(f"{Path(path).name} holds no candles")
    check_grid(frame, timeframe)
    validate_frame(frame)
    try:
        merge_candles(target, frame)
    except OSError as exc:
        raise CandleDataError(f"cannot write {target}: {exc.strerror or exc}") from None
    return len(frame), target
