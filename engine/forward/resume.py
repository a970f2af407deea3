"""Resuming stored runs: the part of the forward engine that rebuilds a run after a restart.

``resume_all`` (at start-up) rebuilds every run marked running or paused from the same candle
history it had — and, on a perpetual, the open interest and funding it stored
(``engine.forward.perp_live``) — restores its portfolio and strategy state, subscribes it, and
settles what happened while the service was down (the backfill, ``ForwardRun.backfill``). A
run that cannot be resumed (the exchange is down, its strategy file is missing) is never given
up: it waits — ``waiting for data`` in the run list, a ``FeedLost`` event at once — and is
retried with backoff until it resumes, then says so with ``FeedRestored`` (the candles it
backfilled).

``Resuming`` is a mixin of ``engine.forward.engine.ForwardEngine``: it uses the engine's store,
sources, settings and attach/announce plumbing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data.history import FetchError
from data.timeframes import timeframe_ms
from engine.errors import ServiceError
from engine.events import EngineError, Event, FeedLost, FeedRestored
from engine.forward.run import ForwardRun
from engine.forward.storage import storage_unavailable
from engine.registry import build_strategy
from engine.store.store import RunRecord, now_ms

if TYPE_CHECKING:
    from engine.forward.engine import ForwardEngine

log = logging.getLogger("engine.forward.engine")  # the engine's log, as before the split

#: A resumed run rebuilds at most this many base candles of history.
MAX_HISTORY = 100_000
#: Downtime after which what a resumed run settled is posted as one ``CaughtUp`` alert.
CATCH_UP_SUMMARY_MS = 10 * 60_000


@dataclass(slots=True)
class WaitingRun:
    """A stored running run that could not be resumed yet and is being retried.

    ``since`` is when it started waiting (ms UTC); ``error`` the last reason.
    """

    record: RunRecord
    since: int
    error: str
    attempts: int = 1
    task: asyncio.Task | None = None


class Resuming:
    """Resume and waiting logic of ``ForwardEngine`` (module docstring)."""

    waiting: dict[str, WaitingRun]

    async def resume_all(self: ForwardEngine) -> list[str]:
        """Resume every run marked running; returns their ids.

        Each run is tried once (the exchange is probed with a single request, so an outage is
        noticed at once); a run that cannot resume waits and is retried in the background
        with backoff until it does (see ``waiting``).
        """
        records = [r for r in reversed(await self.store.runs(("running", "paused")))
                   if r.id not in self.runs and r.id not in self.waiting]
        await asyncio.gather(*(self.resume_or_wait(r) for r in records))
        return [r.id for r in records]

    async def resume_or_wait(self: ForwardEngine, record: RunRecord) -> None:
        """Resume one stored run, or make it wait and retry (see ``resume_all``)."""
        try:
            await self.resume_record(record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._wait(record, exc)

    async def _wait(self: ForwardEngine, record: RunRecord, exc: BaseException) -> None:
        """Mark ``record`` waiting, say so once, and retry it in the background."""
        detail = _describe(exc)
        log.warning("run %s cannot resume yet (%s); retrying with backoff", record.id, detail)
        waiting = WaitingRun(record, now_ms(), detail)
        self.waiting[record.id] = waiting
        if isinstance(exc, FetchError | OSError) or storage_unavailable(exc):
            event: Event = FeedLost(record.id, now_ms(), record.exchange,
                                    f"cannot resume: {detail}; retrying until it is back")
        else:
            event = EngineError(record.id, now_ms(), f"cannot resume: {detail}; retrying")
        await self._store_events((event,))
        waiting.task = asyncio.create_task(self._retry_resume(waiting),
                                           name=f"resume {record.id}")

    async def _retry_resume(self: ForwardEngine, waiting: WaitingRun) -> None:
        first, longest = self.resume_backoff
        delay = first
        rid = waiting.record.id
        while True:
            await asyncio.sleep(delay * random.uniform(0.8, 1.0))
            delay = min(longest, delay * 2)
            waiting.attempts += 1
            try:
                await self.resume_record(waiting.record, restored=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                waiting.error = _describe(exc)
                log.info("run %s still cannot resume (attempt %d): %s", rid, waiting.attempts,
                         waiting.error)
                continue
            self.waiting.pop(rid, None)
            log.warning("run %s resumed after waiting %.0f s", rid,
                        (now_ms() - waiting.since) / 1000)
            return

    async def resume_record(self: ForwardEngine, record: RunRecord,
                            restored: bool = False) -> int:
        """Rebuild, subscribe and catch up one stored run now; returns the candles backfilled.

        Raises whatever stops it before it is attached (nothing is changed then): FetchError
        (exchange unreachable), ServiceError (strategy gone or invalid), strategy errors.
        """
        strategy = build_strategy(record.strategy, record.params, record.timeframe,
                                  self.settings.strategy_dir)
        source = self.source(record.exchange, record.market_type)
        exchange_now = await source.probe()  # one request: an outage fails here, at once
        step = timeframe_ms(record.timeframe)
        end = (record.last_candle_ts or 0) + step
        start = record.history_start if record.history_start is not None else end - step
        start = max(start, end - MAX_HISTORY * step)
        history = await source.fetch(record.symbol, record.timeframe, start, end)
        run = ForwardRun(record, strategy, self.store, source, self._publish, self.guard)
        run.prepare(history, resumed=True, perp=await run.load_perp(history, resumed=True))
        run.last_candle_ts = record.last_candle_ts
        run.restore_portfolio(record.balance, await self.store.positions(record.id),
                              record.next_position_id)
        if record.status == "paused":  # exits only, as it was
            run.apply_stored_pause(record.stop_reason)
        down_since = end if record.last_candle_ts is not None else None
        await self._announce(run, resumed=True, down_since=down_since)
        # subscribe first (live candles wait in the queue), settle the downtime, then consume
        await self._attach(run, consume=False)
        away = exchange_now - down_since if down_since is not None else 0
        run.catching_up = away >= CATCH_UP_SUMMARY_MS
        count = await run.backfill(recovery=True)
        caught_up = run.caught_up_event(away, count)
        if caught_up is not None:
            await run.emit_now(caught_up)
        if restored:
            await run.emit_now(FeedRestored(record.id, now_ms(), record.exchange, count))
        run.consumer = self._start_consumer(run)
        log.info("run %s resumed; %d missed candles processed", record.id, count)
        return count


def _describe(exc: BaseException) -> str:
    """One line for a reason a run cannot resume."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, ServiceError | FetchError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
