"""Statistics of closed trades (``/stats``, the backtest's exit-reason breakdown).

Pure functions over ``engine.types.Trade`` lists: money in quote currency (PnL net of fees),
durations in ms, percentages of the entry notional. A trade wins when its PnL is > 0; a PnL of
exactly 0 counts as a loss (as the win rate of ``engine.metrics`` does).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.types import Trade

#: Display order of the exit reasons paperbot produces; unknown ones follow alphabetically.
REASON_ORDER = ("take_profit", "stop_loss", "trailing_stop", "signal", "time_exit", "manual",
                "end_of_data")


class WinCounts:
    """``losses`` and ``win_rate_pct`` of anything with ``trades`` and ``wins`` counts."""

    __slots__ = ()
    trades: int
    wins: int

    @property
    def losses(self) -> int:
        """Trades with PnL ≤ 0."""
        return self.trades - self.wins

    @property
    def win_rate_pct(self) -> float | None:
        """Wins / trades × 100 (None without trades)."""
        return self.wins / self.trades * 100.0 if self.trades else None


@dataclass(frozen=True, slots=True)
class Group(WinCounts):
    """Trades sharing a key (an exit reason, a side): count, wins and summed PnL (quote)."""

    key: str
    trades: int
    wins: int
    pnl: float


@dataclass(frozen=True, slots=True)
class TradeStats(WinCounts):
    """What ``/stats`` shows. ``best``/``worst`` by PnL percent; streaks count trades in
    exit order; average durations in ms (None when there is no winner / loser)."""

    trades: int
    wins: int
    pnl: float
    fees: float
    by_reason: tuple[Group, ...]
    by_side: tuple[Group, ...]
    avg_win_duration_ms: float | None
    avg_loss_duration_ms: float | None
    best: Trade | None
    worst: Trade | None
    max_win_streak: int
    max_loss_streak: int
    profit_factor: float | None
    expectancy: float | None


def group_trades(trades: Iterable[Trade], key: str) -> tuple[Group, ...]:
    """Trades grouped by the attribute ``key`` (``"exit_reason"`` or ``"side"``).

    Exit reasons come in ``REASON_ORDER`` (unknown reasons after, alphabetically); sides long
    then short.
    """
    counts: dict[str, list[float]] = {}
    for t in trades:
        entry = counts.setdefault(str(getattr(t, key)), [0, 0, 0.0])
        entry[0] += 1
        entry[1] += t.pnl > 0
        entry[2] += t.pnl
    order = REASON_ORDER if key == "exit_reason" else ("long", "short")
    keys = sorted(counts, key=lambda k: (order.index(k) if k in order else len(order), k))
    return tuple(Group(k, int(counts[k][0]), int(counts[k][1]), float(counts[k][2]))
                 for k in keys)


def streaks(trades: Sequence[Trade]) -> tuple[int, int]:
    """Longest runs of consecutive wins and of consecutive losses, in exit order."""
    best_win = best_loss = run = 0
    last: bool | None = None
    for t in sorted(trades, key=lambda t: (t.exit_time, t.id)):
        won = t.pnl > 0
        run = run + 1 if won == last else 1
        last = won
        if won:
            best_win = max(best_win, run)
        else:
            best_loss = max(best_loss, run)
    return best_win, best_loss


def trade_stats(trades: Sequence[Trade]) -> TradeStats:
    """Everything of ``TradeStats`` for ``trades`` (any order)."""
    wins = [t for t in trades if t.pnl > 0]
    losses = [t for t in trades if t.pnl <= 0]
    win_streak, loss_streak = streaks(trades)
    return TradeStats(
        trades=len(trades), wins=len(wins), pnl=sum(t.pnl for t in trades),
        fees=sum(t.fees for t in trades),
        by_reason=group_trades(trades, "exit_reason"), by_side=group_trades(trades, "side"),
        avg_win_duration_ms=_mean(t.duration_ms for t in wins),
        avg_loss_duration_ms=_mean(t.duration_ms for t in losses),
        best=max(trades, key=lambda t: t.pnl_pct, default=None),
        worst=min(trades, key=lambda t: t.pnl_pct, default=None),
        max_win_streak=win_streak, max_loss_streak=loss_streak,
        profit_factor=profit_factor([t.pnl for t in trades]),
        expectancy=sum(t.pnl for t in trades) / len(trades) if trades else None)


def profit_factor(pnls: Sequence[float]) -> float | None:
    """Σ winning PnL / |Σ losing PnL| (``inf`` with wins and no losses; None without trades
    or with neither wins nor losses)."""
    gross_loss = -sum(p for p in pnls if p <= 0)
    if not pnls:
        return None
    if gross_loss > 0:
        return sum(p for p in pnls if p > 0) / gross_loss
    return math.inf if any(p > 0 for p in pnls) else None


def reason_breakdown(trades: Sequence[Trade]) -> dict[str, dict[str, float | int]]:
    """``{reason: {"trades", "wins", "losses", "pnl"}}`` for JSON (``backtest --json``)."""
    return {g.key: {"trades": g.trades, "wins": g.wins, "losses": g.losses, "pnl": g.pnl}
            for g in group_trades(trades, "exit_reason")}


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None
