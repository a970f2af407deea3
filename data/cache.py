"""The Parquet candle cache: one file per exchange, symbol and timeframe.

Layout (DESIGN §2): ``{data_dir}/{exchange}_{BASE}-{QUOTE}_{timeframe}.parquet``, e.g.
``binance_BTC-USDT_1m.parquet``. A contract symbol's settle suffix is not part of the name
(``FIL/USDT:USDT`` is stored as ``FIL-USDT``); the exchange id tells spot from perpetual
(``binance`` vs ``binanceusdm``).

Writes are atomic: the merged frame goes to a temporary file in the same folder, which then
replaces the old file with ``os.replace``, so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data.frames import OHLCV_COLUMNS, empty_frame, normalize_frame, validate_frame
from data.gaps import Gap, find_gaps
from data.names import check_exchange_name
from data.symbols import parse_cache_name, split_symbol
from data.timeframes import normalize_timeframe


def cache_path(data_dir: Path, exchange: str, symbol: str, timeframe: str) -> Path:
    """Path of the cache file for ``exchange``/``symbol``/``timeframe`` under ``data_dir``.

    Each name is checked against its grammar before the path is built, so the file is always
    directly inside ``data_dir``: the exchange a plain id (``[a-z0-9]+``, upper case folded),
    the symbol's parts ``[A-Z0-9]+``, the timeframe ``<n>m|h|d|w``.

    Raises:
        ExchangeNameError, SymbolError, TimeframeError: (all ``ValueError``) for a name that
            breaks its grammar, e.g. ``../../tmp/x``.
    """
    exchange = check_exchange_name(exchange.lower() if isinstance(exchange, str) else exchange)
    base, quote = split_symbol(symbol)
    timeframe = normalize_timeframe(timeframe)
    return Path(data_dir) / f"{exchange}_{base}-{quote}_{timeframe}.parquet"


def read_candles(path: Path, start: int | None = None, end: int | None = None) -> pd.DataFrame:
    """Candles stored at ``path`` with open time in ``[start, end)``; empty when no file.

    Returns a frame with the OHLCV columns (see ``data.frames``), sorted by timestamp.
    """
    path = Path(path)
    if not path.exists():
        return empty_frame()
    filters = []
    if start is not None:
        filters.append(("timestamp", ">=", int(start)))
    if end is not None:
        filters.append(("timestamp", "<", int(end)))
    table = pq.read_table(path, columns=list(OHLCV_COLUMNS), filters=filters or None)
    return normalize_frame(table.to_pandas())


def write_candles(path: Path, frame: pd.DataFrame) -> None:
    """Replace the file at ``path`` with ``frame`` atomically (temp file + rename).

    Raises:
        CandleDataError: when ``frame`` breaks the frame contract; nothing is written.
    """
    frame = normalize_frame(frame)
    validate_frame(frame)
    write_table(path, frame)


def write_table(path: Path, frame: pd.DataFrame) -> None:
    """Write any frame to Parquet at ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp_name, compression="zstd")
        with open(tmp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def merge_frames(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Union of two candle frames, sorted, one row per timestamp (``new`` wins on clashes)."""
    if old.empty:
        merged = normalize_frame(new)
    elif new.empty:
        merged = normalize_frame(old)
    else:
        merged = pd.concat([normalize_frame(old), normalize_frame(new)], ignore_index=True)
    merged = merged.drop_duplicates("timestamp", keep="last").sort_values("timestamp")
    return merged.reset_index(drop=True)


def merge_candles(path: Path, new: pd.DataFrame) -> pd.DataFrame:
    """Merge ``new`` candles into the file at ``path`` (dedupe, sort, atomic write).

    Returns the merged frame now stored.
    """
    merged = merge_frames(read_candles(path), new)
    write_candles(path, merged)
    return merged


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cache file: what it holds and its missing spans."""

    path: Path
    exchange: str
    symbol: str
    timeframe: str
    first: int | None
    last: int | None
    rows: int
    gaps: list[Gap]


def list_cache(data_dir: Path) -> list[CacheEntry]:
    """Every cache file under ``data_dir`` with its span, row count and gaps."""
    entries = []
    for path in sorted(Path(data_dir).glob("*.parquet")):
        parsed = parse_cache_name(path.name)
        if parsed is None:
            continue
        exchange, symbol, timeframe = parsed
        ts = pq.read_table(path, columns=["timestamp"]).column(0).to_numpy()
        entries.append(
            CacheEntry(
                path=path,
                exchange=exchange,
                symbol=symbol,
                timeframe=timeframe,
                first=int(ts[0]) if len(ts) else None,
                last=int(ts[-1]) if len(ts) else None,
                rows=len(ts),
                gaps=find_gaps(ts, timeframe),
            )
        )
    return entries


def cached_span(path: Path) -> tuple[int, int] | None:
    """First and last open time stored at ``path``, or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    ts = pq.read_table(path, columns=["timestamp"]).column(0)
    if len(ts) == 0:
        return None
    return int(ts[0].as_py()), int(ts[-1].as_py())
