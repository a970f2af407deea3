"""Where each alert goes: a channel per kind of alert, optionally a thread per run.

Kinds: ``trade`` (opened, closed, rejected signals, catch-ups), ``ops`` (run started/stopped,
feed lost/restored, errors, storage) and ``summary`` (daily summaries, summaries of alerts held
back by an outage). A kind goes to its own channel (``PAPERBOT_TRADE_ALERTS_CHANNEL_ID``,
``…_OPS_…``, ``…_SUMMARY_…``) when set, else to ``PAPERBOT_ALERTS_CHANNEL_ID``, else to the
channel where the run was started.

With ``PAPERBOT_THREAD_PER_RUN`` every alert of a run goes to the run's own thread, started in
its trade channel from the run's first alert (its "started" message); a kind with a channel of
its own other than the trade channel keeps going there. Feed and storage alerts concern a
connection or every run: they never go to a thread. A thread that cannot be created (missing
permission) is logged and the alert goes to the channel.
"""

from __future__ import annotations

import logging
from typing import Any

import discord

from engine.events import (
    CaughtUp,
    DailySummary,
    Event,
    PositionReduced,
    PositionUpdated,
    RunStarted,
    SignalRejected,
    TradeClosed,
    TradeOpened,
)
from engine.service import PaperService
from engine.store.alert_links import run_thread, set_run_thread
from engine.store.store import RunRecord

log = logging.getLogger(__name__)

KINDS = ("trade", "ops", "summary")
TRADE_EVENTS = (TradeOpened, TradeClosed, PositionUpdated, PositionReduced, SignalRejected,
                CaughtUp)


def alert_kind(event: Event | None) -> str:
    """``trade``, ``ops`` or ``summary`` for an event (None: an outage summary). Trade and
    position events (opened, closed, levels moved, partial exits, rejected signals) are trade
    alerts; run, guard, feed and error events ops alerts; an event added later counts as a
    trade alert when its name says trade or position, else as an ops alert."""
    if event is None or isinstance(event, DailySummary):
        return "summary"
    if isinstance(event, TRADE_EVENTS):
        return "trade"
    name = type(event).__name__.lower()
    return "trade" if "trade" in name or "position" in name else "ops"


def thread_name(run: RunRecord) -> str:
    """``"run 3fa9c1 · sma_cross BTC/USDT 15m"`` (Discord allows 100 characters)."""
    return f"run {run.id} · {run.strategy} {run.symbol} {run.timeframe}"[:100]


class AlertRouter:
    """Resolves and opens the destination of each alert for ``client``."""

    def __init__(self, client: discord.Client, service: PaperService) -> None:
        self.client = client
        self.service = service

    # ---- channels ----------------------------------------------------------------------------
    def channel_id(self, kind: str, run: RunRecord | None) -> int | None:
        """The channel of ``kind`` for ``run`` (None: nowhere, e.g. a run started from the
        command line without an alerts channel)."""
        s = self.service.settings
        own = {"trade": s.trade_alerts_channel_id, "ops": s.ops_alerts_channel_id,
               "summary": s.summary_alerts_channel_id}.get(kind)
        return own or s.alerts_channel_id or (run.channel_id if run is not None else None)

    def uses_thread(self, kind: str, run: RunRecord | None) -> bool:
        """True when alerts of ``kind`` for ``run`` go to the run's thread."""
        s = self.service.settings
        if not s.thread_per_run or run is None:
            return False
        own = self.channel_id(kind, run)
        return kind == "trade" or own == self.channel_id("trade", run)

    async def channel(self, channel_id: int) -> Any:
        """The channel (or thread) object of ``channel_id``."""
        return self.client.get_channel(channel_id) or await self.client.fetch_channel(channel_id)

    # ---- sending -----------------------------------------------------------------------------
    def has_destination(self, event: Event, run: RunRecord | None) -> bool:
        """False when the alert has nowhere to go (it is then dropped as delivered)."""
        return self.channel_id(alert_kind(event), run) is not None

    async def send(self, event: Event, run: RunRecord | None, **message: Any
                   ) -> discord.Message:
        """Send ``message`` (``channel.send`` keywords) to where ``event`` belongs; the first
        alert of a run in thread mode starts its thread."""
        kind = alert_kind(event)
        channel_id = self.channel_id(kind, run)
        assert channel_id is not None, "check has_destination first"
        if run is None or not self.uses_thread(kind, run):
            return await (await self.channel(channel_id)).send(**message)
        store = self.service.store
        assert store is not None
        known = await run_thread(store, run.id)
        if known is not None:
            try:
                return await (await self.channel(known[1])).send(**message)
            except discord.NotFound:  # the thread was deleted: start a new one
                log.warning("thread %d of run %s is gone; starting a new one", known[1], run.id)
        parent = await self.channel(channel_id)
        if isinstance(event, RunStarted):
            sent = await parent.send(**message)
            try:
                thread = await sent.create_thread(name=thread_name(run))
                await set_run_thread(store, run.id, parent.id, thread.id)
            except discord.HTTPException as exc:
                log.warning("could not start a thread for run %s (%s); alerts go to the "
                            "channel", run.id, exc)
            return sent
        try:
            thread = await parent.create_thread(name=thread_name(run),
                                                type=discord.ChannelType.public_thread)
        except discord.HTTPException as exc:
            log.warning("could not start a thread for run %s (%s); alerts go to the channel",
                        run.id, exc)
            return await parent.send(**message)
        await set_run_thread(store, run.id, parent.id, thread.id)
        return await thread.send(**message)
