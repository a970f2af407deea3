"""Commands of a live forward run: manual exits, moving levels, pausing and resuming entries,
and its lifecycle events (failure, the catch-up summary, events outside a candle).

A mixin of ``engine.forward.run.ForwardRun`` (``self`` is the run: its lock, core, portfolio,
storage guard and ``_commit``). Each command takes the run's lock, acts through the core and
commits what it changed in one transaction, like a candle.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from engine.events import (
    CaughtUp,
    EngineError,
    Event,
    RunPaused,
    RunStopped,
    SignalRejected,
    TradeClosed,
    TradeOpened,
)
from engine.store.store import now_ms
from engine.strategy_errors import describe
from engine.types import Trade

if TYPE_CHECKING:
    from collections.abc import Callable

    from engine.core import Core
    from engine.forward.storage import StorageGuard
    from engine.portfolio import Portfolio
    from engine.store.store import RunRecord, Store
    from engine.strategy import Strategy

log = logging.getLogger("engine.forward.run")


class StorageBusy(RuntimeError):
    """A command was refused because the database cannot take writes at the moment."""


class RunCommands:
    """``/close``, ``/position``, pause and resume of a ``ForwardRun``."""

    id: str
    record: RunRecord
    strategy: Strategy
    core: Core | None
    portfolio: Portfolio
    guard: StorageGuard
    lock: asyncio.Lock
    paused: str | None
    _status: tuple[str, str | None] | None
    _pending: list[Any]
    store: Store
    publish: Callable[[Event], None]
    failed: bool
    catching_up: bool
    caught_up: list[Event]

    async def _commit(self, last_candle_ts: int | None, equity: Any,
                      actor: str = "engine", history_start: int | None = None) -> None:
        raise NotImplementedError  # ForwardRun's

    def _writable(self, what: str) -> None:
        """Raise ``StorageBusy`` (nothing was ``what``) while the database takes no writes."""
        if self.guard.failing:
            raise StorageBusy(f"the run database cannot take writes right now "
                              f"({self.guard.last_error}); nothing was {what}, try again later")

    async def close_position(self, position_id: int, actor: str) -> Trade | None:
        """Paper market exit at the last price (``/close``); None for an unknown position.

        Raises:
            StorageBusy: while the database cannot take writes (nothing is changed).
        """
        self._writable("closed")
        async with self.lock:
            assert self.core is not None
            price = self.portfolio.mark_price
            trade = self.core.close_position(position_id, price, now_ms(), "manual")
            if trade is not None:
                await self._commit(None, None, actor=actor)
            return trade

    async def update_levels(self, position_id: int, stop_loss: float | None,
                            take_profit: float | None, actor: str,
                            note: str = "") -> str | None:
        """Move a position's levels (``/position``, the break-even button), checked against
        the last price; in force from the next candle. Returns None when done, else why not.

        Raises:
            StorageBusy: while the database cannot take writes (nothing is changed).
        """
        self._writable("changed")
        async with self.lock:
            assert self.core is not None
            price = self.portfolio.mark_price
            if price != price:
                return "no price yet for this run; try again after the next candle"
            problem = self.core.update_levels(position_id, stop_loss, take_profit, price,
                                              now_ms(), "user", note)
            if problem is None:
                await self._commit(None, None, actor=actor)
            return problem

    # ---- lifecycle ---------------------------------------------------------------------------
    def _strategy_error(self, exc: BaseException) -> None:
        """``on_candle`` raised: pause the run (exits still managed), say where, once."""
        message = describe(exc, self.strategy, self.record.strategy)
        log.error("run %s: %s; the run is paused (exits still managed)", self.id, message,
                  exc_info=exc)
        self._set_paused(message, error=True)
        now = now_ms()
        self._pending += [EngineError(self.id, now, message),
                          RunPaused(self.id, now, message, "engine", error=True)]

    def _set_paused(self, reason: str, error: bool = False) -> None:
        assert self.core is not None
        self.paused = reason
        self.core.entries_paused = f"run paused ({reason[:120]}): exits only"
        self.core.skip_strategy = error
        self._status = ("paused", reason)

    def apply_stored_pause(self, reason: str | None) -> None:
        """Restore a paused state read from the store (a restart); nothing is written (the
        status to write with the next commit stays as it was)."""
        status, reason = self._status, reason or "paused"
        self._set_paused(reason, error=reason.startswith("strategy "))
        self._status = status

    async def pause(self, reason: str, actor: str) -> None:
        """Stop taking entries (exits keep being managed); stored and announced."""
        async with self.lock:
            self._set_paused(reason)
            self._pending.append(RunPaused(self.id, now_ms(), reason, actor))
            await self._commit(None, None, actor=actor)

    async def unpause(self, actor: str) -> None:
        """Take entries again (and call the strategy again after an error)."""
        async with self.lock:
            assert self.core is not None
            self.paused = None
            self.core.entries_paused = None
            self.core.skip_strategy = False
            self._status = ("running", None)
            await self._commit(None, None, actor=actor)

    async def close_all(self, actor: str, reason: str = "manual") -> list[Trade]:
        """Paper market exit of every open position at the last price."""
        async with self.lock:
            assert self.core is not None
            trades = self.core.close_all(self.portfolio.mark_price, now_ms(), reason)
            if trades:
                await self._commit(None, None, actor=actor)
            return trades

    # ---- events outside a candle -------------------------------------------------------------
    def caught_up_event(self, away_ms: int, candles: int) -> CaughtUp | None:
        """The one alert for what a catch-up settled (None when it settled nothing)."""
        events, self.caught_up = self.caught_up, []
        if self.catching_up and self.core is not None and self.core.guards is not None:
            self.core.guards.reannounce()  # guard alerts were folded: locks left are re-posted
        self.catching_up = False
        closed = tuple(e.trade for e in events if isinstance(e, TradeClosed))
        opened = tuple(e.position for e in events if isinstance(e, TradeOpened))
        rejected = sum(1 for e in events if isinstance(e, SignalRejected))
        if not (closed or opened or rejected):
            return None
        return CaughtUp(self.id, now_ms(), away_ms, candles, closed, opened, rejected)

    async def emit_now(self, event: Event) -> None:
        """Store ``event`` in the outbox (retried while storage is down), then publish it."""
        await self.guard.write(lambda: self.store.add_events((event,)),
                               f"run {self.id} {type(event).__name__}")
        self.publish(event)

    async def _fail(self, message: str) -> None:
        self.failed = True
        log.error("run %s failed: %s", self.id, message)
        events = (EngineError(self.id, now_ms(), message, fatal=True),
                  RunStopped(self.id, now_ms(), "error", self.portfolio.equity))
        await self.guard.write(
            lambda: self.store.set_status(self.id, "failed", message, "engine", events),
            f"run {self.id} status")
        for event in events:
            self.publish(event)
