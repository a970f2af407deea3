"""The forward engine: every live run in the process, their feeds, REST sources and lifecycle.

Starting a run validates it, fetches warm-up candles (and, on a perpetual, its open interest
and funding), stores it and subscribes it to the shared feed of its exchange (with the ticker
stream on a perpetual). On start-up ``resume_all`` rebuilds every run marked running
(``engine.forward.resume``: restoring, catching up, waiting and retrying while a run cannot
resume). ``shutdown`` (SIGTERM) detaches every run without changing its status, so the next
start resumes it; a run stopped by a user is not resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace

from data.history import FetchError
from data.live.feed import FeedHub
from data.live.messages import default_ws_url, protocol_for
from engine.errors import ServiceError
from engine.events import Event, RunStarted, RunStopped
from engine.forward.bus import EventBus
from engine.forward.resume import CATCH_UP_SUMMARY_MS, MAX_HISTORY, Resuming, WaitingRun
from engine.forward.run import ForwardRun, StorageBusy
from engine.forward.source import CcxtCandleSource
from engine.forward.spec import (
    RunSpec,
    check_spec,
    default_source_factory,
    run_protections,
)
from engine.forward.storage import StorageGuard
from engine.perp.leverage import check_leverage, margin_rules
from engine.settings import Settings
from engine.store.store import RunRecord, Store, now_ms
from engine.strategy import Strategy
from engine.types import Position

log = logging.getLogger(__name__)

class ForwardEngine(Resuming):
    """Runs live strategies. One per process; use ``start()`` then ``resume_all()``.

    Args:
        settings: validated settings.
        store: the open run database.
        bus: where events go after they are committed (a new bus when None).
        source_factory: ``(exchange, market_type) -> CcxtCandleSource``.
        resume_backoff: (first, longest) seconds between attempts to resume a waiting run;
            the delay doubles per attempt, with 20 % jitter (default:
            ``PAPERBOT_RESUME_RETRY_S`` doubling to 5 minutes).
    """

    def __init__(self, settings: Settings, store: Store, bus: EventBus | None = None,
                 source_factory: Callable[[str, str], CcxtCandleSource] | None = None,
                 resume_backoff: tuple[float, float] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus or EventBus()
        self.hub = FeedHub(silence_timeout=settings.feed_timeout_s)
        self.runs: dict[str, ForwardRun] = {}
        self.waiting: dict[str, WaitingRun] = {}
        self.guard = StorageGuard(self._publish)
        self.resume_backoff = resume_backoff or (settings.resume_retry_s, 300.0)
        self._source_factory = source_factory or default_source_factory(settings)
        self._sources: dict[tuple[str, str], CcxtCandleSource] = {}

    # ---- plumbing ----------------------------------------------------------------------------
    def source(self, exchange: str, market_type: str) -> CcxtCandleSource:
        """The shared REST source of ``exchange``/``market_type``."""
        key = (exchange, market_type)
        if key not in self._sources:
            self._sources[key] = self._source_factory(exchange, market_type)
        return self._sources[key]

    def known_markets(self) -> list[str]:
        """Symbols of every exchange market list loaded so far (for autocomplete)."""
        out: list[str] = []
        for source in self._sources.values():
            out += [s for s in source.loaded_markets() if s not in out]
        return out

    async def preload_markets(self) -> None:
        """Load the live exchange's markets (spot) so symbol autocomplete can offer them."""
        try:
            await self.source(self.settings.live_exchange, "spot").markets()
        except (FetchError, ValueError) as exc:
            log.warning("could not load %s markets: %s", self.settings.live_exchange, exc)

    def ws_url(self, exchange: str, linear: bool) -> str:
        """Stream URL: the settings override for the live exchange, else the exchange's own."""
        override = self.settings.exchange_ws_url
        if override and exchange == self.settings.live_exchange:
            base = override.rstrip("/")
            if exchange == "bybit":  # one override serves both Bybit categories
                for suffix in ("/spot", "/linear"):
                    if base.endswith(suffix):
                        return base[: -len(suffix)] + ("/linear" if linear else "/spot")
            return base
        return default_ws_url(exchange, linear)

    def _publish(self, event: Event) -> None:
        self.bus.publish(event)

    # ---- start / resume ------------------------------------------------------------------------
    def check_spec(self, spec: RunSpec) -> tuple[Strategy, str, str, float]:
        """Validate what needs no network (``engine.forward.spec.check_spec``).

        Raises:
            ServiceError: saying what is wrong and what is valid.
        """
        return check_spec(self.settings, spec)

    async def start_run(self, spec: RunSpec) -> RunRecord:
        """Validate, warm up, store and subscribe a new run; returns its record.

        Raises:
            ServiceError: unknown strategy/symbol/timeframe, bad params or balance, an
                exchange without live feed, or the exchange cannot be reached.
        """
        strategy, symbol, exchange, balance = self.check_spec(spec)
        timeframe = strategy.timeframes[0]
        market_type = "linear" if ":" in symbol else "spot"
        source = self.source(exchange, market_type)
        try:
            markets = await source.markets()
            if symbol not in markets:
                examples = ", ".join(sorted(s for s in markets if s.endswith("/USDT"))[:5])
                raise ServiceError(f"unknown symbol {symbol} on {exchange} {market_type}; "
                                   f"e.g. {examples}")
            if (markets.get(symbol) or {}).get("active") is False:
                raise ServiceError(f"{symbol} is listed on {exchange} {market_type} but not "
                                   "trading (delisted or suspended); pick another symbol")
            margin = margin_rules(check_leverage(spec.leverage, exchange, symbol,
                                                 markets.get(symbol)), exchange, symbol)
            history, _ = await source.latest(symbol, timeframe,
                                             max(1, strategy.warmup_candles()))
        except FetchError as exc:
            raise ServiceError(f"cannot reach {exchange}: {exc}") from None
        if not len(history):  # a listed market without candles would start and stay silent
            raise ServiceError(f"{exchange} has no {timeframe} candles of {symbol} for the "
                               f"warm-up: the market is not trading; pick another symbol")
        created = now_ms()
        fee = self.settings.fee_bps if spec.fee_bps is None else spec.fee_bps
        record = RunRecord(
            id=secrets.token_hex(3), strategy=strategy.name or spec.strategy,
            params=dict(strategy.params), symbol=symbol, timeframe=timeframe,
            timeframes=list(strategy.timeframes), exchange=exchange, market_type=market_type,
            starting_balance=float(balance), fee_bps=fee,
            maker_fee_bps=(spec.maker_fee_bps if spec.maker_fee_bps is not None else
                           spec.fee_bps if spec.fee_bps is not None else
                           self.settings.maker_fee),
            slippage_bps=(self.settings.slippage_bps if spec.slippage_bps is None
                          else spec.slippage_bps),
            leverage=margin.leverage, status="running", channel_id=spec.channel_id,
            started_by=spec.started_by, created_at=created, updated_at=created,
            stopped_at=None, stop_reason=None,
            history_start=int(history.timestamp[0]) if len(history) else None,
            last_candle_ts=int(history.timestamp[-1]) if len(history) else None,
            balance=float(balance), next_position_id=1, strategy_state={}, mark_price=None,
            mark_ts=None, protections=run_protections(self.settings, spec, strategy).to_dict(),
            maintenance_margin_rate=margin.maintenance_margin_rate)
        run = ForwardRun(record, strategy, self.store, source, self._publish, self.guard)
        try:  # a perpetual's open interest and funding over the warm-up
            perp = await run.load_perp(history, resumed=False)
        except FetchError as exc:
            raise ServiceError(f"cannot reach {exchange} for the open interest and funding "
                               f"of {symbol}: {exc}") from None
        await self.store.create_run(record, spec.started_by)
        run.prepare(history, resumed=False, perp=perp)
        await self._attach(run)
        await self._announce(run, resumed=False)
        log.info("run %s started: %s %s %s on %s", record.id, record.strategy, symbol,
                 timeframe, exchange)
        return record

    async def _attach(self, run: ForwardRun, consume: bool = True) -> None:
        rec = run.record
        feed = self.hub.feed(self.ws_url(rec.exchange, rec.market_type == "linear"),
                             protocol_for(rec.exchange))
        run.subscription = await feed.subscribe(rec.symbol, rec.timeframe)
        run.feed = feed
        if run.perp is not None:  # open interest and funding on the same connection
            try:
                run.perp.book = await feed.subscribe_ticker(rec.symbol)
            except ValueError as exc:  # no ticker stream: every candle's values over REST
                log.warning("run %s: %s; open interest and funding over REST", rec.id, exc)
        self.runs[rec.id] = run
        if consume:
            run.consumer = self._start_consumer(run)

    def _start_consumer(self, run: ForwardRun) -> asyncio.Task:
        task = asyncio.create_task(run.consume(), name=f"run {run.id}")
        task.add_done_callback(lambda t: self._consumer_done(run, t))
        return task

    def _consumer_done(self, run: ForwardRun, task: asyncio.Task) -> None:
        """Supervision: a run's consumer only ends when cancelled or when the run failed."""
        if task.cancelled() or self.runs.get(run.id) is not run:
            return
        if run.failed:  # stored as failed: let go of it
            asyncio.get_running_loop().create_task(self.detach(run))
            return
        log.error("run %s: its consumer stopped (%r); restarting it", run.id, task.exception())
        run.consumer = self._start_consumer(run)

    async def detach(self, run: ForwardRun) -> None:
        """Stop feeding ``run`` (its status is the caller's business). A transaction in flight
        is shielded and completes on its own, so this never waits on a slow backfill or a
        storage retry."""
        self.runs.pop(run.id, None)
        consumer = run.consumer
        if consumer is not None and consumer is not asyncio.current_task():
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(consumer, timeout=2.0)
        if run.subscription is not None and run.feed is not None:
            with contextlib.suppress(Exception):
                await run.feed.unsubscribe(run.subscription)
            if run.perp is not None and run.perp.book is not None:
                run.perp.book = None
                with contextlib.suppress(Exception):
                    await run.feed.unsubscribe_ticker(run.record.symbol)

    async def _store_events(self, events: tuple[Event, ...]) -> None:
        """Events of no run state (lifecycle): stored (retried while storage is down), then
        published."""
        await self.guard.write(lambda: self.store.add_events(events), "events")
        for event in events:
            self._publish(event)

    async def _announce(self, run: ForwardRun, resumed: bool,
                        down_since: int | None = None) -> None:
        rec = run.record
        await self._store_events((RunStarted(
            rec.id, now_ms(), rec.strategy, rec.symbol, rec.timeframe, rec.exchange,
            rec.starting_balance, resumed, rec.channel_id, down_since),))

    # ---- stop / commands ---------------------------------------------------------------------
    async def update_levels(self, run_id: str, position_id: int, stop_loss: float | None,
                            take_profit: float | None, actor: str, note: str = "") -> Position:
        """Move the stop-loss and/or take-profit of an open position (None leaves a level,
        ``nan`` removes it); returns the position as it is now.

        Raises:
            ServiceError: the run is not live, no such position, or the level is on the wrong
                side of the last price (the reason is said).
        """
        run = self.runs.get(run_id)
        if run is None:
            raise ServiceError(f"run {run_id!r} is not live; see /forward list")
        if run.portfolio.get(position_id) is None:
            ids = ", ".join(f"#{p.id}" for p in run.portfolio.positions) or "none"
            raise ServiceError(f"run {run_id} has no open position #{position_id}; open: {ids}")
        try:
            problem = await run.update_levels(position_id, stop_loss, take_profit, actor, note)
        except StorageBusy as exc:
            raise ServiceError(str(exc)) from None
        if problem is not None:
            raise ServiceError(f"position #{position_id} of run {run_id}: {problem}")
        pos = run.portfolio.get(position_id)
        assert pos is not None
        return replace(pos, take_profits=[list(level) for level in pos.take_profits])

    async def shutdown(self) -> None:
        """Detach every run (status unchanged: they resume next start), close feeds and REST.

        Never waits on the exchange or on a storage retry: each step is bounded, and what a
        run processed is already stored per candle.
        """
        for waiting in self.waiting.values():
            if waiting.task is not None:
                waiting.task.cancel()
        self.waiting.clear()
        runs = list(self.runs.values())
        await asyncio.gather(*(self.detach(run) for run in runs))
        events = tuple(RunStopped(run.id, now_ms(), "shutdown", run.portfolio.equity)
                       for run in runs)
        if events:
            with contextlib.suppress(Exception):  # one attempt: storage may be what failed
                await asyncio.wait_for(self.store.add_events(events), timeout=2.0)
            for event in events:
                self._publish(event)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.hub.close(), timeout=3.0)
        sources = list(self._sources.values())
        self._sources.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(s.close() for s in sources),
                                                  return_exceptions=True), timeout=2.0)


__all__ = ["CATCH_UP_SUMMARY_MS", "MAX_HISTORY", "ForwardEngine", "RunSpec", "WaitingRun"]
