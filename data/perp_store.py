"""Open interest and funding rate history, stored beside the candle cache (Parquet).

Layout, next to ``{exchange}_{BASE}-{QUOTE}-{SETTLE}_{timeframe}.parquet`` candles:

* open interest: ``{exchange}_{BASE}-{QUOTE}-{SETTLE}_{period}.oi.parquet``, columns
  ``timestamp`` (int64 ms UTC, sample time) and ``open_interest`` (float64, base units);
  ``period`` is the sampling period (``5m`` … ``1d``), e.g. ``bybit_BTC-USDT-USDT_1h.oi.parquet``;
* funding: ``{exchange}_{BASE}-{QUOTE}-{SETTLE}.funding.parquet``, columns ``timestamp``
  (settlement time, ms UTC, floored to the second: Binance stamps a few ms late) and
  ``funding_rate`` (float64, fraction per funding interval).

Both belong to the linear perpetual of the pair, whatever symbol is given (``BTC/USDT`` and
``BTC/USDT:USDT`` name the same files). Writes are atomic (``data.cache.write_table``); rows
are unique per timestamp, sorted, the newest fetch winning.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from data.cache import CacheEntry, write_table
from data.gaps import find_gaps
from data.names import check_exchange_name
from data.perp import FUNDING, OPEN_INTEREST, funding_interval
from data.symbols import cache_pair, perpetual_of
from data.timeframes import DAY_MS, HOUR_MS, MINUTE_MS, normalize_timeframe, timeframe_ms

#: Value column of each kind of file.
VALUE_COLUMN = {OPEN_INTEREST: "open_interest", FUNDING: "funding_rate"}
#: What one row is called in messages.
ROW_NOUN = {OPEN_INTEREST: "open interest samples", FUNDING: "funding rates"}

_NAME = re.compile(r"^(?P<exchange>[a-z0-9]+)_(?P<base>[A-Z0-9]+)-(?P<quote>[A-Z0-9]+)-"
                   r"(?P<settle>[A-Z0-9]+)(?:_(?P<period>[1-9][0-9]*[mhdw]))?"
                   r"\.(?P<kind>oi|funding)\.parquet$")


def oi_path(data_dir: Path, exchange: str, symbol: str, period: str) -> Path:
    """The open interest file of ``symbol``'s perpetual sampled every ``period``.

    Raises:
        ExchangeNameError, SymbolError, TimeframeError: a name that breaks its grammar.
    """
    exchange = check_exchange_name(exchange.lower())
    pair = cache_pair(exchange, perpetual_of(symbol))
    return Path(data_dir) / f"{exchange}_{pair}_{normalize_timeframe(period)}.oi.parquet"


def funding_path(data_dir: Path, exchange: str, symbol: str) -> Path:
    """The funding rate file of ``symbol``'s perpetual.

    Raises:
        ExchangeNameError, SymbolError: a name that breaks its grammar.
    """
    exchange = check_exchange_name(exchange.lower())
    pair = cache_pair(exchange, perpetual_of(symbol))
    return Path(data_dir) / f"{exchange}_{pair}.funding.parquet"


def parse_perp_name(name: str) -> tuple[str, str, str, str] | None:
    """``(kind, exchange, symbol, period)`` of a stored file name (period ``""`` for funding),
    or None: ``"bybit_BTC-USDT-USDT_5m.oi.parquet"`` → ``("open_interest", "bybit",
    "BTC/USDT:USDT", "5m")``."""
    match = _NAME.match(name)
    if match is None:
        return None
    kind = OPEN_INTEREST if match["kind"] == "oi" else FUNDING
    symbol = f"{match['base']}/{match['quote']}:{match['settle']}"
    return kind, match["exchange"], symbol, match["period"] or ""


def read_series(path: Path, kind: str, start: int | None = None,
                end: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (int64 ms) and values (float64) stored at ``path`` within ``[start, end)``;
    empty arrays when there is no file."""
    path = Path(path)
    if not path.exists():
        return np.empty(0, dtype=np.int64), np.empty(0)
    filters = []
    if start is not None:
        filters.append(("timestamp", ">=", int(start)))
    if end is not None:
        filters.append(("timestamp", "<", int(end)))
    table = pq.read_table(path, columns=["timestamp", VALUE_COLUMN[kind]],
                          filters=filters or None)
    return (table.column(0).to_numpy().astype(np.int64),
            table.column(1).to_numpy().astype(np.float64))


def clean_series(timestamps: np.ndarray, values: np.ndarray, kind: str) -> pd.DataFrame:
    """A storable frame: finite values only (open interest also ≥ 0), funding times floored
    to the second, one row per timestamp (the last one winning), sorted."""
    ts = np.asarray(timestamps, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if kind == FUNDING:
        ts = ts - ts % 1000
    keep = np.isfinite(values) & ((values >= 0) if kind == OPEN_INTEREST else True)
    frame = pd.DataFrame({"timestamp": ts[keep], VALUE_COLUMN[kind]: values[keep]})
    frame = frame.drop_duplicates("timestamp", keep="last").sort_values("timestamp")
    return frame.reset_index(drop=True)


def merge_series(path: Path, kind: str, timestamps: np.ndarray,
                 values: np.ndarray) -> pd.DataFrame:
    """Merge new samples into the file at ``path`` (new values win; atomic write); returns
    the frame now stored."""
    old_ts, old_values = read_series(path, kind)
    frame = clean_series(np.concatenate([old_ts, np.asarray(timestamps, dtype=np.int64)]),
                         np.concatenate([old_values, np.asarray(values, dtype=np.float64)]),
                         kind)
    write_table(path, frame)
    return frame


def stored_oi_periods(data_dir: Path, exchange: str, symbol: str) -> list[str]:
    """Sampling periods with an open interest file for ``symbol``'s perpetual, finest first."""
    exchange = check_exchange_name(exchange.lower())
    prefix = f"{exchange}_{cache_pair(exchange, perpetual_of(symbol))}_"
    periods = []
    for path in Path(data_dir).glob(f"{prefix}*.oi.parquet"):
        parsed = parse_perp_name(path.name)
        if parsed is not None and path.name.startswith(prefix):
            periods.append(parsed[3])
    return sorted(periods, key=timeframe_ms)


def interval_name(ms: int) -> str:
    """A spacing in ms as a timeframe string: 28_800_000 → ``"8h"`` (minutes at least)."""
    ms = max(MINUTE_MS, int(ms) - int(ms) % MINUTE_MS)
    for unit, size in (("d", DAY_MS), ("h", HOUR_MS)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms // MINUTE_MS}m"


def list_perp_files(data_dir: Path) -> list[CacheEntry]:
    """Every open interest and funding file under ``data_dir``, as ``data list`` shows them."""
    entries = []
    for path in sorted(Path(data_dir).glob("*.parquet")):
        parsed = parse_perp_name(path.name)
        if parsed is None:
            continue
        kind, exchange, symbol, period = parsed
        ts, _ = read_series(path, kind)
        if kind == FUNDING:
            period = interval_name(funding_interval(ts))
        entries.append(CacheEntry(
            path=path, exchange=exchange, symbol=symbol, timeframe=period,
            first=int(ts[0]) if len(ts) else None, last=int(ts[-1]) if len(ts) else None,
            rows=len(ts), gaps=find_gaps(ts, period), kind=kind))
    return entries


def describe_path(path: Path) -> str:
    """What the rows of a stored file are called: candles, open interest samples or funding
    rates (for messages such as ``imported 288 open interest samples into …``)."""
    parsed = parse_perp_name(Path(path).name)
    return "candles" if parsed is None else ROW_NOUN[parsed[0]]
