"""Periodic jobs of the forward engine (APScheduler on the asyncio loop).

* heartbeat: one log line with runs, feeds and their state;
* stale-feed check: a ``FeedLost`` event for a run without a closed candle for
  ``PAPERBOT_STALE_AFTER_MIN`` minutes beyond its timeframe (once, until candles flow again);
* equity snapshot: every run's equity at the last price, between candle closes;
* daily summary at 00:00 UTC: a ``DailySummary`` event per run.
"""

from __future__ import annotations

import logging
from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from engine.events import DailySummary, FeedLost
from engine.forward.engine import ForwardEngine
from engine.forward.storage import storage_unavailable
from engine.store.store import now_ms

log = logging.getLogger(__name__)
DAY_MS = 86_400_000


def heartbeat(engine: ForwardEngine) -> str:
    """Log and return one line describing the engine's state."""
    feeds = ", ".join(f"{f.url} {'up' if f.connected else 'down'} ({len(f.topics)} topics)"
                      for f in engine.hub.feeds) or "none"
    line = f"heartbeat: {len(engine.runs)} runs; feeds: {feeds}"
    log.info(line)
    return line


async def check_stale(engine: ForwardEngine) -> list[str]:
    """Emit ``FeedLost`` for runs whose candles stopped; returns their ids."""
    stale = []
    limit = engine.settings.stale_after_min * 60_000
    now = now_ms()
    for run in list(engine.runs.values()):
        quiet = now - run.last_candle_wall
        if quiet > limit + run.step_ms and not run.feed_down:
            run.feed_down = True
            await run.emit_now(FeedLost(run.id, now, run.record.exchange,
                                         f"no candle for {quiet / 60_000:.0f} min"))
            stale.append(run.id)
    return stale


async def snapshot_equity(engine: ForwardEngine) -> int:
    """Store every run's equity at its mark price; returns how many were written.

    Best effort: while storage is unavailable the snapshots are skipped (one log line); the
    candle closes, which matter, are retried by the runs themselves.
    """
    now = now_ms()
    written = 0
    for run in list(engine.runs.values()):
        pf = run.portfolio
        try:
            await engine.store.snapshot_equity(run.id, now, pf.equity, pf.balance)
        except Exception as exc:
            if not storage_unavailable(exc):
                raise
            log.warning("equity snapshots skipped: storage unavailable (%s)", exc)
            break
        written += 1
    return written


async def daily_summary(engine: ForwardEngine) -> list[DailySummary]:
    """Publish one ``DailySummary`` per run for the last 24 hours."""
    now = now_ms()
    out = []
    for run in list(engine.runs.values()):
        pf = run.portfolio
        trades = await engine.store.trades(run.id)
        realised = sum(t.pnl for t in trades)
        today = sum(1 for t in trades if t.exit_time >= now - DAY_MS)
        event = DailySummary(run.id, now, pf.equity, pf.balance, realised,
                             pf.equity - pf.balance, len(pf.positions), today)
        await run.emit_now(event)
        out.append(event)
    return out


def build_scheduler(engine: ForwardEngine, heartbeat_s: float = 60.0,
                    snapshot_s: float = 300.0) -> AsyncIOScheduler:
    """A scheduler with the four jobs; call ``start()`` inside the running loop."""
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(heartbeat, "interval", seconds=heartbeat_s, args=[engine],
                      id="heartbeat", coalesce=True, max_instances=1)
    scheduler.add_job(check_stale, "interval", seconds=60, args=[engine], id="stale",
                      coalesce=True, max_instances=1)
    scheduler.add_job(snapshot_equity, "interval", seconds=snapshot_s, args=[engine],
                      id="equity", coalesce=True, max_instances=1)
    scheduler.add_job(daily_summary, "cron", hour=0, minute=0, args=[engine], id="daily",
                      coalesce=True, max_instances=1)
    return scheduler
