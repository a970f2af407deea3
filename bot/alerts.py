"""Alert delivery: engine events → embeds in Discord channels, from the database outbox.

Every event is committed to the ``events`` table before it is published. The sink wakes on
each published event, reads the undelivered rows in order and sends them: to
``PAPERBOT_ALERTS_CHANNEL_ID`` when set, else to the channel where the run was started. A send
that fails is retried (three tries, 0.5/1/2 s apart); an event still undelivered stays in the
outbox and is tried again on the next wake-up, up to five attempts, then it is logged and left
in the database. The sink runs in its own task: nothing it does can block the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import discord

from bot import embeds
from bot.buttons import trade_buttons
from engine.events import Event, TradeClosed, TradeOpened
from engine.service import PaperService
from engine.store.store import RunRecord, StoredEvent

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
#: Undelivered events older than this at start-up are not sent any more (marked delivered).
STALE_MS = 6 * 3_600_000


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
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._queue: asyncio.Queue | None = None

    def start(self) -> None:
        """Begin delivering (subscribes to the engine's bus)."""
        assert self.service.engine is not None
        bus = self.service.engine.bus
        self._queue = bus.subscribe()
        self._task = asyncio.create_task(self._run(), name="alert-sink")

    async def stop(self, drain_timeout: float = 2.0) -> None:
        """Deliver what is pending (bounded), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=drain_timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._queue is not None and self.service.engine is not None:
            self.service.engine.bus.unsubscribe(self._queue)

    async def _run(self) -> None:
        await self.client.wait_until_ready()
        await self._skip_stale()
        while True:
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert delivery failed; will retry")
                await asyncio.sleep(1.0)
            assert self._queue is not None
            await self._queue.get()  # an event was committed: look at the outbox
            while not self._queue.empty():
                self._queue.get_nowait()

    async def _skip_stale(self) -> None:
        store = self.service.store
        assert store is not None
        cutoff = int(time.time() * 1000) - STALE_MS
        for stored in await store.pending_events(limit=1000, max_attempts=MAX_ATTEMPTS):
            if stored.event.ts < cutoff:
                await store.mark_delivered(stored.id)

    async def flush(self) -> int:
        """Send every undelivered event; returns how many were delivered."""
        store = self.service.store
        assert store is not None
        done = 0
        for stored in await store.pending_events(limit=100, max_attempts=MAX_ATTEMPTS):
            if await self._deliver(stored):
                done += 1
        return done

    async def _deliver(self, stored: StoredEvent) -> bool:
        store = self.service.store
        assert store is not None
        event = stored.event
        run = await store.run(event.run_id)
        channel_id = self.service.settings.alerts_channel_id or (run.channel_id if run else None)
        if channel_id is None:  # a run started from the CLI, no alert channel: nothing to do
            await store.mark_delivered(stored.id)
            return True
        error = "unknown"
        for delay in (0.5, 1.0, 2.0, None):
            try:
                message = await self._send(channel_id, event, run)
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

    async def _send(self, channel_id: int, event: Event, run: RunRecord | None) -> discord.Message:
        channel = self.client.get_channel(channel_id) or await self.client.fetch_channel(channel_id)
        if isinstance(event, TradeOpened):
            return await channel.send(embed=embeds.trade_opened(event, run),
                                      view=trade_buttons(event.run_id, event.position.id))
        if isinstance(event, TradeClosed):
            path = None
            with contextlib.suppress(Exception):
                path = await self.service.trade_chart(event.run_id, event.trade)
            embed = embeds.trade_closed(event, run, chart=path is not None)
            if path is not None:
                return await channel.send(embed=embed,
                                          file=discord.File(path, filename="trade.png"))
            return await channel.send(embed=embed)
        return await channel.send(embed=embeds.lifecycle(event, run))
