"""Alert delivery: engine events → embeds in Discord channels, from the database outbox.

Every event is committed to the ``events`` table before it is published. The sink wakes on
each published event, reads the undelivered rows in order and sends them where
``bot.routing`` says: a channel per kind of alert (trade, ops, summary), by default
``PAPERBOT_ALERTS_CHANNEL_ID``, else the channel where the run was started, and optionally a
thread per run. Trade-opened alerts carry a chart and Close/Chart buttons, which are disabled
(the message edited) once the position closes; feed alerts come once per exchange connection
(``bot.feed_alerts``). A send
that fails is retried (three tries, 0.5/1/2 s apart); an event still undelivered stays in the
outbox and is tried again on the next wake-up, up to five attempts, then it is logged and left
in the database. The sink runs in its own task: nothing it does can block the engine.

Nothing is dropped after an outage. Alerts that waited in the outbox longer than ``STALE_MS``
(Discord was unreachable, the bot was reconnecting) are posted as one summary per run instead
of a burst of stale alerts; a run that caught up after paperbot itself was down says so in one
``CaughtUp`` alert (built by the engine). Storage alerts (``StorageUnavailable`` /
``StorageRestored``) are not stored — the database is what fails — and are sent straight from
the event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable
from pathlib import Path

import discord

from bot import embeds
from bot.buttons import closed_buttons, trade_buttons
from bot.feed_alerts import FeedAlerts
from bot.routing import AlertRouter
from engine.events import VOLATILE, Event, FeedLost, FeedRestored, TradeClosed, TradeOpened
from engine.service import PaperService
from engine.store.alert_links import alert_of, forget_alert, remember_alert
from engine.store.store import RunRecord, StoredEvent

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
#: Alerts older than this when they can finally be sent are summarised per run (ms).
STALE_MS = 10 * 60_000
#: Outbox rows read per page.
PAGE = 200


class AlertSink:
    """Delivers stored events through ``client``.

    Args:
        client: the connected bot.
        service: for the store, run records and trade charts.
    """

    def __init__(self, client: discord.Client, service: PaperService) -> None:
        self.client = client
        self.service = service
        self.sent: list[tuple[int, int]] = []  # (event row id, message id), for tests/metrics
        self._task: asyncio.Task | None = None
        self._queue: asyncio.Queue | None = None
        self.router = AlertRouter(client, service)
        self.feeds = FeedAlerts()

    def start(self) -> None:
        """Begin delivering (subscribes to the engine's bus)."""
        assert self.service.engine is not None
        bus = self.service.engine.bus
        self._queue = bus.subscribe()
        self._task = asyncio.create_task(self._run(), name="alert-sink")

    async def stop(self, drain_timeout: float = 1.5) -> None:
        """Deliver what is pending (bounded), then stop."""
        if self._task is None:
            return
        if self.client.is_ready():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), timeout=drain_timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None
        if self._queue is not None and self.service.engine is not None:
            self.service.engine.bus.unsubscribe(self._queue)

    async def _run(self) -> None:
        await self.client.wait_until_ready()
        assert self._queue is not None
        while True:
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert delivery failed; will retry")
                await asyncio.sleep(1.0)
            event = await self._queue.get()  # an event was committed: look at the outbox
            events = [event]
            while not self._queue.empty():
                events.append(self._queue.get_nowait())
            for event in events:
                if isinstance(event, VOLATILE):
                    await self._send_volatile(event)

    # ---- the outbox ----------------------------------------------------------------------------
    async def flush(self) -> int:
        """Send every undelivered event; returns how many rows were delivered.

        Rows that waited longer than ``STALE_MS`` go out as one summary per run, after every
        page was read (rows that went stale while being retried join them).
        """
        store = self.service.store
        assert store is not None
        done = 0
        tried: set[int] = set()
        stale: dict[str, list[StoredEvent]] = defaultdict(list)
        for _ in range(1_000):  # bounded: each page either delivers rows or stops
            pending = [p for p in await store.pending_events(limit=PAGE,
                                                             max_attempts=MAX_ATTEMPTS)
                       if p.id not in tried]
            if not pending:
                break
            for stored in pending:
                tried.add(stored.id)
                outcome = None if _stale(stored) else await self._deliver(stored)
                if outcome is None:  # stale, or went stale while being retried
                    stale[stored.event.run_id].append(stored)
                elif outcome:
                    done += 1
        for run_id, items in stale.items():
            done += await self._summarise(run_id, items)
        return done

    async def _summarise(self, run_id: str, items: list[StoredEvent]) -> int:
        """Post one summary of ``items`` (stale alerts of one run); returns rows delivered."""
        store = self.service.store
        assert store is not None
        run = await store.run(run_id)
        channel_id = self.router.channel_id("summary", run)
        if channel_id is not None:
            oldest = min((s.created_at or s.event.ts) for s in items)
            away = int(time.time() * 1000) - oldest
            embed = embeds.alert_backlog(run_id, run, [s.event for s in items], away)
            try:
                message = await self._send_embed(channel_id, embed)
            except (discord.HTTPException, OSError) as exc:
                log.warning("summary of %d alerts for run %s not delivered: %s", len(items),
                            run_id, exc)
                return 0
            self.sent += [(s.id, message.id) for s in items]
        for stored in items:
            await store.mark_delivered(stored.id)
        return len(items)

    async def _deliver(self, stored: StoredEvent) -> bool | None:
        """Send one stored event: True when delivered, False when it failed (it stays in the
        outbox), None when it went stale while being retried (summarised instead)."""
        store = self.service.store
        assert store is not None
        event = stored.event
        run = await store.run(event.run_id)
        if not self.router.has_destination(event, run):
            # a run started from the CLI, no alert channel: nothing to do
            await store.mark_delivered(stored.id)
            return True
        error = "unknown"
        for delay in (0.5, 1.0, 2.0, None):
            if _stale(stored):  # gone stale while retrying: summarised with the others
                return None
            try:
                message = await self._send(event, run)
            except (discord.HTTPException, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                if delay is None:
                    break
                await asyncio.sleep(delay)
                continue
            await store.mark_delivered(stored.id)
            self.sent.append((stored.id, message.id))
            return True
        await store.mark_failed(stored.id, error)
        level = logging.ERROR if stored.attempts + 1 >= MAX_ATTEMPTS else logging.WARNING
        log.log(level, "alert %d for run %s not delivered (attempt %d): %s", stored.id,
                event.run_id, stored.attempts + 1, error)
        return False

    # ---- sending ---------------------------------------------------------------------------------
    async def _send_embed(self, channel_id: int, embed: discord.Embed) -> discord.Message:
        channel = await self.router.channel(channel_id)
        return await channel.send(embed=embed)

    async def _send(self, event: Event, run: RunRecord | None) -> discord.Message:
        if isinstance(event, FeedLost | FeedRestored):
            channel_id = self.router.channel_id("ops", run)
            assert channel_id is not None
            return await self.feeds.send(await self.router.channel(channel_id), event, run)
        if isinstance(event, TradeOpened):
            return await self._send_opened(event, run)
        if isinstance(event, TradeClosed):
            return await self._send_closed(event, run)
        return await self.router.send(event, run, embed=embeds.lifecycle(event, run))

    async def _send_opened(self, event: TradeOpened, run: RunRecord | None) -> discord.Message:
        """The opened alert with its chart and buttons; remembered so they can be disabled."""
        p = event.position
        path, equity = await asyncio.gather(
            self._chart(self.service.opened_chart(event.run_id, p)),
            self.service.equity_at(event.run_id, p.entry_time))
        embed = embeds.trade_opened(event, run, equity, chart=path is not None)
        extra = {"file": discord.File(path, filename="opened.png")} if path is not None else {}
        message = await self.router.send(event, run, embed=embed,
                                         view=trade_buttons(event.run_id, p.id), **extra)
        store = self.service.store
        assert store is not None
        await remember_alert(store, event.run_id, p.id, message.channel.id, message.id)
        return message

    async def _send_closed(self, event: TradeClosed, run: RunRecord | None) -> discord.Message:
        """The closed alert with its chart; then the opened alert's buttons are disabled."""
        t = event.trade
        path, realised = await asyncio.gather(
            self._chart(self.service.trade_chart(event.run_id, t)),
            self.service.realised_until(event.run_id, t))
        embed = embeds.trade_closed(event, run, chart=path is not None, realised=realised)
        extra = {"file": discord.File(path, filename="trade.png")} if path is not None else {}
        message = await self.router.send(event, run, embed=embed, **extra)
        await self._disable_buttons(event)
        return message

    @staticmethod
    async def _chart(job: Awaitable[Path | None]) -> Path | None:
        """An alert's chart, or None when drawing it failed (the alert goes without)."""
        try:
            return await job
        except Exception:
            log.exception("alert chart not drawn")
            return None

    async def _disable_buttons(self, event: TradeClosed) -> None:
        """Edit the position's opened alert: its buttons greyed out, saying how it ended."""
        store = self.service.store
        assert store is not None
        link = await alert_of(store, event.run_id, event.trade.id)
        if link is None:
            return
        channel_id, message_id = link
        message = self.client.get_partial_messageable(channel_id).get_partial_message(
            message_id)
        try:
            await message.edit(view=closed_buttons(event.run_id, event.trade))
        except discord.NotFound:
            pass  # the alert was deleted: nothing to update
        except (discord.HTTPException, OSError) as exc:
            log.warning("buttons of position #%d (run %s) not disabled: %s", event.trade.id,
                        event.run_id, exc)
            return
        await forget_alert(store, event.run_id, event.trade.id)

    async def _send_volatile(self, event: Event) -> None:
        """A storage alert: to the alerts channel, else to every live run's channel (once)."""
        channels: list[int] = []
        wanted = self.router.channel_id("ops", None)
        if wanted is not None:
            channels = [wanted]
        elif self.service.engine is not None:
            engine = self.service.engine
            records = [r.record for r in engine.runs.values()] + \
                [w.record for w in engine.waiting.values()]
            channels = sorted({r.channel_id for r in records if r.channel_id is not None})
        embed = embeds.lifecycle(event, None)
        for channel_id in channels:
            try:
                await self._send_embed(channel_id, embed)
            except (discord.HTTPException, OSError) as exc:
                log.warning("storage alert not delivered to %d: %s", channel_id, exc)


def _stale(stored: StoredEvent) -> bool:
    """True when ``stored`` waited in the outbox longer than ``STALE_MS``."""
    return stored.created_at is None or stored.created_at < time.time() * 1000 - STALE_MS
