"""Realised PnL per day, week or month (``/daily``, ``/weekly``, ``/monthly``) and per strategy
and symbol (``/performance``).

A trade belongs to the period of its exit (UTC; weeks start on Monday). ``pct`` is the
period's realised PnL over the equity at the period's start, counted as the starting balances
plus the PnL realised before it — what Freqtrade's ``/daily`` shows. Money in quote currency,
times ms UTC.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from engine.stats.trades import WinCounts
from engine.types import Trade

PERIODS = ("day", "week", "month")


@dataclass(frozen=True, slots=True)
class PeriodRow:
    """One period: ``start``/``end`` ms UTC (end exclusive), trades closed in it, their
    realised PnL (quote) and that PnL in percent of the equity at the period's start."""

    start: int
    end: int
    trades: int
    wins: int
    pnl: float
    pct: float | None


@dataclass(frozen=True, slots=True)
class PerformanceRow(WinCounts):
    """Closed trades of every run of one strategy on one symbol: PnL in quote currency and in
    percent of those runs' summed starting balances."""

    strategy: str
    symbol: str
    runs: int
    trades: int
    wins: int
    pnl: float
    pct: float | None


def period_start(ms: int, period: str) -> int:
    """Start (ms UTC) of the day, week (Monday) or month holding ``ms``.

    Raises:
        ValueError: for a period other than ``day``, ``week``, ``month``.
    """
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start = day
    elif period == "week":
        start = day - timedelta(days=day.weekday())
    elif period == "month":
        start = day.replace(day=1)
    else:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    return int(start.timestamp() * 1000)


def next_start(start: int, period: str) -> int:
    """Start of the period after the one starting at ``start`` (ms UTC)."""
    if period == "day":
        return start + 86_400_000
    if period == "week":
        return start + 7 * 86_400_000
    moment = datetime.fromtimestamp(start / 1000, tz=UTC)
    days = calendar.monthrange(moment.year, moment.month)[1]
    return start + days * 86_400_000


def period_table(trades: Sequence[Trade], period: str, count: int, now: int,
                 starting_balance: float) -> list[PeriodRow]:
    """The ``count`` periods ending with the one holding ``now``, newest first, empty periods
    included.

    Raises:
        ValueError: for an unknown ``period`` or ``count`` < 1.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    starts = [period_start(now, period)]
    for _ in range(count - 1):
        starts.append(period_start(starts[-1] - 1, period))
    starts.reverse()
    ordered = sorted(trades, key=lambda t: t.exit_time)
    realised_before = sum(t.pnl for t in ordered if t.exit_time < starts[0])
    rows: list[PeriodRow] = []
    for start in starts:
        end = next_start(start, period)
        inside = [t for t in ordered if start <= t.exit_time < end]
        pnl = sum(t.pnl for t in inside)
        base = starting_balance + realised_before
        rows.append(PeriodRow(start, end, len(inside), sum(t.pnl > 0 for t in inside), pnl,
                              pnl / base * 100.0 if base > 0 else None))
        realised_before += pnl
    rows.reverse()
    return rows


def performance(runs: Sequence[tuple[str, str, float, Sequence[Trade]]]) -> list[
        PerformanceRow]:
    """Rows per (strategy, symbol) from ``(strategy, symbol, starting_balance, trades)`` per
    run, best PnL first."""
    groups: dict[tuple[str, str], list] = {}
    for strategy, symbol, balance, trades in runs:
        g = groups.setdefault((strategy, symbol), [0, 0, 0, 0.0, 0.0])
        g[0] += 1
        g[1] += len(trades)
        g[2] += sum(t.pnl > 0 for t in trades)
        g[3] += sum(t.pnl for t in trades)
        g[4] += balance
    rows = [PerformanceRow(s, sym, g[0], g[1], g[2], g[3], g[3] / g[4] * 100.0 if g[4] else None)
            for (s, sym), g in groups.items()]
    return sorted(rows, key=lambda r: (-r.pnl, r.strategy, r.symbol))
