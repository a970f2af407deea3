"""The Parquet candle cache: one file per exchange, symbol and timeframe.

Layout (DESIGN §2): ``{data_dir}/{exchange}_{BASE}-{QUOTE}_{timeframe}.parquet``, e.g.
``binance_BTC-USDT_1m.parquet``, for spot candles. Perpetual candles carry the settle currency
as a third part, ``{exchange}_{BASE}-{QUOTE}-{SETTLE}_{timeframe}.parquet`` (``BTC/USDT:USDT``
on bybit → ``bybit_BTC-USDT-USDT_1h.parquet``), so spot and perpetual candles of one pair never
share a file; ``data.migrate`` moves perpetual candles that older versions stored under the spot
name. Open interest and funding rates live beside them (``data.perp_store``).

Candle files hold the OHLCV columns and, optionally, ``taker_buy_volume`` (base units bought by
takers during the candle; Binance kline CSVs carry it, see ``data.importer``). It survives merges:
a new row without it keeps the value already stored for that open time.

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

from data.frames import (
    OHLCV_COLUMNS,
    TAKER_BUY_VOLUME,
    empty_frame,
    normalize_frame,
    validate_frame,
)
from data.gaps import Gap, find_gaps
from data.names import check_exchange_name
from data.symbols import cache_pair, parse_cache_name, split_symbol
from data.timeframes import normalize_timeframe

__all__ = ["CacheEntry", "cache_path", "cached_span", "list_cache", "merge_candles",
           "merge_frames", "read_candles", "split_symbol", "write_candles", "write_table"]


def cache_path(data_dir: Path, exchange: str, symbol: str, timeframe: str) -> Path:
    """Path of the cache file for ``exchange``/``symbol``/``timeframe`` under ``data_dir``.

    Each name is checked against its grammar before the path is built, so the file is always
    directly inside ``data_dir``: the exchange a plain id (``[a-z0-9]+``, upper case folded),
    the symbol's parts ``[A-Z0-9]+``, the timeframe ``<n>m|h|d|w``. A perpetual's name has
    its settle currency as a third part (see the module docstring).

    Raises:
        ExchangeNameError, SymbolError, TimeframeError: (all ``ValueError``) for a name that
            breaks its grammar, e.g. ``../../tmp/x``, or an inverse contract.
    """
    exchange = check_exchange_name(exchange.lower() if isinstance(exchange, str) else exchange)
    pair = cache_pair(exchange, symbol)
    timeframe = normalize_timeframe(timeframe)
    return Path(data_dir) / f"{exchange}_{pair}_{timeframe}.parquet"


def read_candles(path: Path, start: int | None = None, end: int | None = None,
                 extra: bool = False) -> pd.DataFrame:
    """Candles stored at ``path`` with open time in ``[start, end)``; empty when no file.

    Returns a frame with the OHLCV columns (see ``data.frames``), sorted by timestamp; with
    ``extra`` also ``taker_buy_volume`` when the file has it.
    """
    path = Path(path)
    if not path.exists():
        return empty_frame()
    filters = []
    if start is not None:
        filters.append(("timestamp", ">=", int(start)))
    if end is not None:
        filters.append(("timestamp", "<", int(end)))
    columns = list(OHLCV_COLUMNS)
    if extra and TAKER_BUY_VOLUME in pq.read_schema(path).names:
        columns.append(TAKER_BUY_VOLUME)
    table = pq.read_table(path, columns=columns, filters=filters or None)
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
    """Union of two candle frames, sorted, one row per timestamp (``new`` wins on clashes).

    ``taker_buy_volume`` is kept when either side has it; on a clash where the new row lacks
    it (NaN), the old row's value stays.
    """
    if old.empty:
        merged = normalize_frame(new)
    elif new.empty:
        merged = normalize_frame(old)
    else:
        merged = pd.concat([normalize_frame(old), normalize_frame(new)], ignore_index=True)
        if TAKER_BUY_VOLUME in merged.columns:
            # groupby "last" skips NaN: the newest known taker volume of each open time
            merged[TAKER_BUY_VOLUME] = merged.groupby("timestamp")[TAKER_BUY_VOLUME] \
                .transform("last")
    merged = merged.drop_duplicates("timestamp", keep="last").sort_values("timestamp")
    return merged.reset_index(drop=True)


def merge_candles(path: Path, new: pd.DataFrame) -> pd.DataFrame:
    """Merge ``new`` candles into the file at ``path`` (dedupe, sort, atomic write).

    Returns the merged frame now stored.
    """
    merged = merge_frames(read_candles(path, extra=True), new)
    write_candles(path, merged)
    return merged


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cache file: what it holds and its missing spans.

    ``kind`` is ``"candles"``, ``"open_interest"`` (``timeframe`` = its sampling period) or
    ``"funding"`` (``timeframe`` = the funding interval seen in the file, e.g. ``8h``).
    """

    path: Path
    exchange: str
    symbol: str
    timeframe: str
    first: int | None
    last: int | None
    rows: int
    gaps: list[Gap]
    kind: str = "candles"


def list_cache(data_dir: Path) -> list[CacheEntry]:
    """Every cache file under ``data_dir`` (candles, open interest, funding rates) with its
    span, row count and gaps, after moving misnamed perpetual files (``data.migrate``)."""
    from data.migrate import ensure_migrated
    from data.perp_store import list_perp_files

    ensure_migrated(data_dir)
    entries = list_perp_files(data_dir)
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
    order = {"candles": 0, "open_interest": 1, "funding": 2}
    return sorted(entries, key=lambda e: (e.exchange, e.symbol, order[e.kind], e.timeframe))


def cached_span(path: Path) -> tuple[int, int] | None:
    """First and last open time stored at ``path``, or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    ts = pq.read_table(path, columns=["timestamp"]).column(0)
    if len(ts) == 0:
        return None
    return int(ts[0].as_py()), int(ts[-1].as_py())
