"""The one interface every guard implements, and the lock a guard answers with.

A guard watches a run through three notifications from the core step — an exit was booked, a
base candle closed with this equity, an entry is asked for — and answers "locked until T,
because …" (a ``Lock``) or nothing. Guards are deterministic: time is always an input (candle
close times, ms UTC), never the wall clock, so a backtest and a forward run over the same
candles lock the same entries. Each keeps its state in plain fields that ``to_state`` turns
into JSON for forward runs to persist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

#: One UTC day, ms.
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Lock:
    """Entries are refused by ``guard``.

    Attributes:
        guard: the protection's name, e.g. ``"cooldown"``.
        until: close time (ms UTC) from which entries are allowed again; ``None`` when the lock
            lifts on a condition instead of a time (equity back near its peak, a position
            closed).
        reason: one line naming the guard and when it lifts, e.g. ``"cooldown: no entries
            until 2025-05-20 17:00 UTC (5 candles after the stop-loss candle closed at
            12:00)"``.
    """

    guard: str
    until: int | None
    reason: str

    def to_state(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"guard": self.guard, "until": self.until, "reason": self.reason}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Lock | None:
        """The lock ``to_state`` described (None stays None)."""
        if not state:
            return None
        until = state.get("until")
        return cls(str(state["guard"]), None if until is None else int(until),
                   str(state["reason"]))


class Guard:
    """Base of every guard (one module each in ``engine.risk``).

    Subclasses set ``name`` and override the notifications they need. ``lock`` is the lock in
    force (None: entries allowed); a time lock is lifted by ``on_close`` at the first close at
    or after its ``until``.

    Args:
        candle_ms: length of the run's base candle, ms.
    """

    name: ClassVar[str] = ""

    def __init__(self, candle_ms: int) -> None:
        self.candle_ms = candle_ms
        self.lock: Lock | None = None

    def on_exit(self, close_ts: int, reason: str) -> None:
        """A fill left a position with exit ``reason`` during the base candle closing at
        ``close_ts`` (ms UTC)."""

    def on_close(self, close_ts: int, equity: float, open_positions: int) -> bool:
        """The base candle closing at ``close_ts`` closed: ``equity`` (quote) after its exits,
        before its entries; ``open_positions`` still open. Lifts a time lock that has run out.

        Returns:
            True when every open position must be closed at market now (drawdown flatten).
        """
        if self.lock is not None and self.lock.until is not None and close_ts >= self.lock.until:
            self.lock = None
        return False

    def blocking(self, close_ts: int, open_positions: int) -> Lock | None:
        """The lock refusing an entry at the close ``close_ts`` with ``open_positions`` open,
        or None."""
        lock = self.lock
        if lock is not None and (lock.until is None or close_ts < lock.until):
            return lock
        return None

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state (``from_state`` restores it)."""
        return {"lock": None if self.lock is None else self.lock.to_state()}

    def from_state(self, state: dict[str, Any]) -> None:
        """Restore what ``to_state`` returned."""
        self.lock = Lock.from_state(state.get("lock"))


def when(ms: int) -> str:
    """``1747760400000`` → ``"2025-05-20 17:00"`` (UTC)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def clock(ms: int, day_of: int) -> str:
    """``"12:00"`` when ``ms`` falls on the UTC day of ``day_of``, else the full ``when``."""
    return when(ms)[11:] if ms // DAY_MS == day_of // DAY_MS else when(ms)


def candles(n: int) -> str:
    """``"1 candle"``, ``"5 candles"``."""
    return f"{n} candle{'s' * (n != 1)}"
