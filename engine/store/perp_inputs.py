"""What forward runs on perpetuals saw, stored so that a backtest reproduces it.

Two tables of the run database (schema v7):

* ``perp_inputs``: per (exchange, symbol, base timeframe, candle open time) the open interest
  and the funding rate a run gave the strategy at that candle's close (NULL: unknown) — the
  warm-up candles' values fetched over REST at start, the live candles' from the ticker
  stream, the backfilled candles' over REST again;
* ``funding_settlements``: per (exchange, symbol, settlement time) the funding rate the run
  knew settled then (from the ticker stream or REST) — the payments it booked.

Why the run database and not the Parquet history beside the candle cache: the long-running
process never imports pandas or pyarrow (its memory budget, docs/architecture.md), the values
are committed in the same transaction as the candle that used them (a crash never keeps one
without the other), and a value a run did not know is stored as NULL, so a backtest sees NaN
exactly where the run did (re-aligning samples to candle closes could not guarantee that).

A backtest of the same exchange, symbol and timeframe reads them (``load_recorded``) when the
run database exists (``--db`` / ``PAPERBOT_DB_PATH``): for the candles they cover they replace
the values aligned from the Parquet history, and the settlements join the stored funding
history (the run's rate wins for the same time).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite
import numpy as np

from engine.types import none_to_nan

#: The stored points of one exchange, symbol and timeframe in ``[start, end)``, by time.
_POINTS_SQL = ("SELECT ts, open_interest, funding_rate FROM perp_inputs WHERE exchange=? AND "
               "symbol=? AND timeframe=? AND ts>=? AND ts<? ORDER BY ts")
#: The stored settlements of one exchange and symbol in ``[start, end)``, by time.
_SETTLEMENTS_SQL = ("SELECT ts, rate FROM funding_settlements WHERE exchange=? AND symbol=? "
                    "AND ts>=? AND ts<? ORDER BY ts")


@dataclass(slots=True)
class PerpWrite:
    """Rows to store for one run's symbol and timeframe.

    Attributes:
        points: ``(candle open time ms UTC, open interest, funding rate)``, ``nan`` = unknown.
        settlements: ``(settlement time ms UTC, rate)``.
    """

    exchange: str
    symbol: str
    timeframe: str
    points: list[tuple[int, float, float]] = field(default_factory=list)
    settlements: list[tuple[int, float]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.points or self.settlements)


@dataclass(frozen=True, slots=True)
class Recorded:
    """Stored values of one exchange, symbol and timeframe within a span.

    Attributes:
        ts: candle open times, int64 ms UTC, sorted, shape ``(n,)``.
        open_interest, funding_rate: float64 ``(n,)``, NaN = the run did not know.
        settle_ts, rates: funding settlements known to runs (ms UTC; fractions), sorted.
    """

    ts: np.ndarray
    open_interest: np.ndarray
    funding_rate: np.ndarray
    settle_ts: np.ndarray
    rates: np.ndarray


def _none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


async def write_perp(db: aiosqlite.Connection, write: PerpWrite) -> None:
    """Insert (or replace) ``write``'s rows; the caller holds the transaction."""
    key = (write.exchange, write.symbol)
    if write.points:
        await db.executemany(
            "INSERT OR REPLACE INTO perp_inputs (exchange, symbol, timeframe, ts, open_interest, "
            "funding_rate) VALUES (?, ?, ?, ?, ?, ?)",
            [(*key, write.timeframe, int(ts), _none(oi), _none(rate))
             for ts, oi, rate in write.points])
    if write.settlements:
        await db.executemany(
            "INSERT OR REPLACE INTO funding_settlements (exchange, symbol, ts, rate) "
            "VALUES (?, ?, ?, ?)", [(*key, int(ts), float(rate))
                                    for ts, rate in write.settlements])


async def read_points(db: aiosqlite.Connection, exchange: str, symbol: str, timeframe: str,
                      start: int, end: int) -> dict[int, tuple[float, float]]:
    """Stored ``{candle open time: (open interest, funding rate)}`` with open times in
    ``[start, end)`` (NaN where unknown)."""
    async with db.execute(
            _POINTS_SQL, (exchange, symbol, timeframe, start, end)) as cur:
        rows = await cur.fetchall()
    return {r[0]: (none_to_nan(r[1]), none_to_nan(r[2])) for r in rows}


async def read_settlements(db: aiosqlite.Connection, exchange: str, symbol: str, start: int,
                           end: int) -> dict[int, float]:
    """Stored ``{settlement time: rate}`` in ``[start, end)``."""
    async with db.execute(_SETTLEMENTS_SQL, (exchange, symbol, start, end)) as cur:
        return {r[0]: r[1] for r in await cur.fetchall()}


def load_recorded(db_path: Path, exchange: str, symbol: str, timeframe: str, start: int,
                  end: int) -> Recorded | None:
    """What forward runs stored for candles opening in ``[start, end)`` and settlements in
    that span (synchronous, for backtests); None when the database does not exist, predates
    schema v7 or holds nothing for them.

    Raises:
        sqlite3.Error: the database cannot be read (locked for longer than 5 s, corrupt).
    """
    path = Path(db_path)
    if not path.is_file():
        return None
    with sqlite3.connect(path, timeout=5.0) as conn:
        found = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND "
                             "name='perp_inputs'").fetchone()
        if found is None:
            return None
        points = conn.execute(_POINTS_SQL,
                              (exchange, symbol, timeframe, start, end)).fetchall()
        settled = conn.execute(_SETTLEMENTS_SQL, (exchange, symbol, start, end)).fetchall()
    if not points and not settled:
        return None
    return Recorded(np.array([r[0] for r in points], dtype=np.int64),
                    np.array([none_to_nan(r[1]) for r in points], dtype=np.float64),
                    np.array([none_to_nan(r[2]) for r in points], dtype=np.float64),
                    np.array([r[0] for r in settled], dtype=np.int64),
                    np.array([r[1] for r in settled], dtype=np.float64))
