"""One forward run: a strategy paper-trading live candles with the shared core step.

A run is built from its stored record and candle history (warm-up, or on resume the same history
it had), then fed closed candles and ticks from its feed subscription. Every closed candle goes
through ``Core.step`` exactly as in a backtest; stop-loss/take-profit are also checked on each
tick. Each processed candle is committed to the store in one transaction, then its events are
published. Candles missing before a closed one (a reconnect, a restart) are fetched over REST
first, so the strategy sees a gap-free series, each candle exactly once.

Storage trouble never makes memory and database disagree: a candle's transaction is retried
(``StorageGuard``) until it is written, while the next candles wait in the feed queue. The run
keeps a rolling window of ``strategy.history_candles()`` base candles in memory (the window's
start is stored, so a restart rebuilds exactly the same window).

A run on a perpetual gives each candle its open interest and funding rate as known at the close
and books the funding settled during it (``engine.forward.perp_live``); a leveraged one
liquidates like a backtest (``engine.perp``). Commands (``/close``, pause, …) are in
``engine.forward.run_commands``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from data.history import FetchError
from data.live.feed import FeedStatus, LiveFeed, Subscription
from data.live.messages import KlineUpdate
from data.ohlcv import OHLCV, Candle
from data.perp import PerpInputs
from data.timeframes import lower_timeframes, timeframe_ms
from engine.core import Core
from engine.drilldown import DrillDown
from engine.events import (
    EngineError,
    Event,
    FeedLost,
    FeedRestored,
    PositionReduced,
    PositionUpdated,
    SignalRejected,
    TradeClosed,
    TradeOpened,
)
from engine.fills import BOTH, FillModel, touch
from engine.forward.perp_live import LiveInputs
from engine.forward.run_commands import RunCommands, StorageBusy
from engine.forward.source import CcxtCandleSource
from engine.forward.storage import StorageGuard
from engine.market import MarketData
from engine.perp.leverage import MarginRules
from engine.portfolio import Portfolio
from engine.risk import Guards, Protections
from engine.store.rows import position_row
from engine.store.store import RunRecord, StepWrite, Store, now_ms
from engine.strategy import Strategy

log = logging.getLogger(__name__)

#: Closed trades and rejections a live run keeps in memory (all of them are in the database).
KEEP_RECENT = 500


class RunFailed(RuntimeError):
    """The strategy raised; the run is stopped with status ``failed``."""


__all__ = ["KEEP_RECENT", "ForwardRun", "RunFailed", "StorageBusy"]


class ForwardRun(RunCommands):
    """A live run. Create with ``ForwardRun.build``; feed it with ``consume``.

    Args:
        record: the stored run.
        strategy: a fresh strategy instance with the run's params and base timeframe.
        store: the run database.
        source: REST candles of the run's exchange.
        publish: called with each event after it is committed.
        guard: retries writes while storage is unavailable (one per engine).
    """

    def __init__(self, record: RunRecord, strategy: Strategy, store: Store,
                 source: CcxtCandleSource, publish: Callable[[Event], None],
                 guard: StorageGuard | None = None) -> None:
        self.record = record
        self.id = record.id
        self.strategy = strategy
        self.store = store
        self.source = source
        self.publish = publish
        self.guard = guard or StorageGuard(publish)
        self.history_limit = max(1, strategy.history_candles())
        self.trim_chunk = max(250, self.history_limit // 4)
        self.history_start: int | None = record.history_start
        self.catching_up = False  # resume after a long outage: one CaughtUp alert, not many
        self.caught_up: list[Event] = []
        self.paused: str | None = None  # why, while the run takes no entries
        self._status: tuple[str, str | None] | None = None  # to write with the next commit
        self.step_ms = timeframe_ms(record.timeframe)
        self.lock = asyncio.Lock()
        self.subscription: Subscription | None = None
        self.feed: LiveFeed | None = None
        self.consumer: asyncio.Task | None = None
        self.last_candle_ts: int | None = record.last_candle_ts
        self.last_candle_wall: int = now_ms()
        self.feed_down = False
        self.failed = False
        self._pending: list[Event] = []
        self._lower: dict[str, OHLCV] = {}
        self.market: MarketData | None = None
        self.core: Core | None = None
        self.portfolio = Portfolio(record.starting_balance, record.symbol, record.leverage)
        #: a perpetual's inputs (None on spot)
        self.perp = LiveInputs(record.exchange, record.symbol, record.timeframe, source,
                               source.retry) if record.market_type == "linear" else None

    # ---- construction ----------------------------------------------------------------------
    async def load_perp(self, history: OHLCV, resumed: bool) -> PerpInputs | None:
        """The perpetual inputs of ``history`` (``LiveInputs.initial``); None on spot.

        Raises:
            FetchError: REST failed after its retries.
        """
        if self.perp is None:
            return None
        return await self.perp.initial(history, self.store, resumed)

    def prepare(self, history: OHLCV, resumed: bool, perp: PerpInputs | None = None) -> None:
        """Load ``history`` (all visible) with its perpetual inputs, bind the strategy,
        restore state when ``resumed``."""
        rec = self.record
        self.market = MarketData(rec.symbol, rec.timeframe, history, self.strategy.timeframes[1:],
                                 mirror=False, perp=perp)
        self.market.go_live()
        self.strategy.bind(self.market)
        fills = FillModel(rec.fee_bps, rec.maker_fee_bps, rec.slippage_bps)
        lower = lower_timeframes(rec.timeframe)
        drill = DrillDown(self._lower_source if lower else None, rec.timeframe)
        guards = Guards.build(Protections.from_dict(rec.protections), self.step_ms)
        self.core = Core(self.strategy, self.market, self.portfolio, fills, drill, rec.id,
                         self._pending.append, guards=guards,
                         margin=MarginRules(rec.leverage, rec.maintenance_margin_rate),
                         funding={} if self.perp is not None else None)
        self.core.on_strategy_error = self._strategy_error
        if len(history):
            self.portfolio.mark_price = float(history.close[-1])
            self.last_candle_ts = int(history.timestamp[-1])
        if resumed:
            self.strategy.set_state(rec.strategy_state)
            if guards is not None:
                guards.from_state(rec.guard_state)

    def restore_portfolio(self, balance: float, positions: list, next_id: int) -> None:
        """Put stored cash and positions back (resume)."""
        self.portfolio.restore(balance, [replace(p, symbol=self.record.symbol)
                                         for p in positions], next_id)

    def _lower_source(self, timeframe: str, start: int, end: int) -> OHLCV | None:
        candles = self._lower.get(timeframe)
        return None if candles is None else candles.between(start, end)

    # ---- feeding ---------------------------------------------------------------------------
    async def consume(self) -> None:
        """Process the subscription's queue until cancelled (the run's task).

        Nothing but a cancellation or the run's failure ends this loop: an error handling one
        item is logged and reported, and the next item is processed.
        """
        assert self.subscription is not None
        queue = self.subscription.queue
        while True:
            item = await queue.get()
            try:
                if isinstance(item, FeedStatus):
                    await self.on_feed_status(item)
                elif item.closed:
                    await self.on_closed(item.candle)
                else:
                    await self.on_tick(item)
            except RunFailed:
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the run alive; say what happened
                log.exception("run %s: error handling %s", self.id, item)
                try:
                    await self.emit_now(EngineError(self.id, now_ms(),
                                                    f"{type(exc).__name__}: {exc}"))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("run %s: could not report the error", self.id)

    async def on_closed(self, candle: Candle, recovery: bool = False) -> int:
        """Process a closed base candle, backfilling any gap before it; returns candles done."""
        async with self.lock:
            if self.failed:
                return 0
            last = self.last_candle_ts
            if last is not None and candle.timestamp <= last:
                return 0  # already processed (duplicate, or delivered again after a backfill)
            done = 0
            if last is not None and candle.timestamp > last + self.step_ms:
                try:
                    done = await self._backfill_locked(candle.timestamp, recovery)
                except FetchError as exc:
                    # not processed: the candle is fetched again with the next backfill
                    await self.emit_now(EngineError(self.id, now_ms(),
                                                     f"backfill failed: {exc}"))
                    return 0
            await self._process(candle, recovery)
            self.last_candle_wall = now_ms()
            return done + 1

    async def backfill(self, recovery: bool = False) -> int:
        """Fetch and process every candle closed since the last one processed."""
        async with self.lock:
            try:
                now = await self.source.server_time()
                return await self._backfill_locked(now - now % self.step_ms, recovery, now)
            except FetchError as exc:
                await self.emit_now(EngineError(self.id, now_ms(), f"backfill failed: {exc}"))
                return 0

    async def _backfill_locked(self, until: int, recovery: bool, now: int | None = None) -> int:
        """Process the closed candles in ``(last, until)``; raises ``FetchError``."""
        start = (self.last_candle_ts or until) + self.step_ms
        if start >= until:
            return 0
        missed = await self.source.fetch(self.record.symbol, self.record.timeframe, start,
                                         until, now=now)
        if self.perp is not None and len(missed):
            await self.perp.load_rest(start, until)
        for i in range(len(missed)):
            await self._process(Candle(int(missed.timestamp[i]), float(missed.open[i]),
                                       float(missed.high[i]), float(missed.low[i]),
                                       float(missed.close[i]), float(missed.volume[i])),
                                recovery)
        return len(missed)

    async def on_tick(self, update: KlineUpdate) -> None:
        """Check stop-loss/take-profit on an unclosed update of the next base candle."""
        async with self.lock:
            if self.failed or not self.portfolio.positions:
                self.portfolio.mark_price = update.candle.close
                return
            last = self.last_candle_ts
            if last is not None and update.candle.timestamp != last + self.step_ms:
                return  # a tick of a candle after a gap: wait for the backfill
            c = update.candle
            assert self.core is not None
            self.core.check_tick(max(update.event_ts, c.timestamp), c.open, c.high, c.low,
                                 c.close)
            if self._pending:
                await self._commit(None, None)

    async def on_feed_status(self, status: FeedStatus) -> None:
        """Feed lost: record it. Feed back: backfill what closed meanwhile, then record it."""
        if not status.connected:
            if not self.feed_down:
                self.feed_down = True
                await self.emit_now(FeedLost(self.id, status.ts, self.record.exchange,
                                              status.detail))
            return
        if self.feed_down or self.last_candle_ts is not None:
            count = await self.backfill()
            if self.feed_down:
                self.feed_down = False
                await self.emit_now(FeedRestored(self.id, now_ms(), self.record.exchange,
                                                  count))

    # ---- internals -------------------------------------------------------------------------
    async def _process(self, candle: Candle, recovery: bool) -> None:
        core, market = self.core, self.market
        assert core is not None and market is not None
        await self._prefetch_lower(candle)
        if self.perp is None:
            market.append(candle)
        else:  # the values known at the close, and the funding settled in the candle
            if self.perp.needs_rest(candle):
                await self.perp.load_rest(candle.timestamp, candle.timestamp + self.step_ms)
            point, due = self.perp.point(candle)
            market.append(candle, point)
            if due is not None and core.funding_due is not None:
                core.funding_due[candle.timestamp] = due
        core.settling_recovery = recovery
        try:
            # a strategy error pauses the run inside the step (``_strategy_error``): its
            # exits are still managed and the candle is committed like any other
            equity = core.step(len(market.base) - 1)
        except Exception as exc:  # a bug of the engine itself: memory cannot be trusted
            await self._fail(f"engine error at candle {candle.timestamp}: "
                             f"{type(exc).__name__}: {exc}")
            raise RunFailed(str(exc)) from exc
        finally:
            core.settling_recovery = False
            self._lower.clear()
            if core.funding_due:
                core.funding_due.clear()
        close_time = candle.timestamp + self.step_ms
        history_start = self._bound_memory()
        try:
            # retried while storage is unavailable: the next candles wait in the queue
            await self._commit(candle.timestamp, (close_time, equity, self.portfolio.balance),
                               history_start=history_start)
        except Exception as exc:
            # not a storage outage (a bug): memory moved past what the database holds, and
            # retrying cannot help: stop rather than drift apart
            await self._fail(f"could not store candle {candle.timestamp}: {exc}")
            raise RunFailed(str(exc)) from exc
        self.last_candle_ts = candle.timestamp

    def _bound_memory(self) -> int | None:
        """Keep the rolling history window and recent lists bounded; returns the new window
        start (ms UTC) when the window moved, else None."""
        market, core = self.market, self.core
        assert market is not None and core is not None
        core.equity.clear()  # stored per candle; a live run needs no curve in memory
        if len(core.rejections) > 2 * KEEP_RECENT:
            del core.rejections[:-KEEP_RECENT]
        if len(self.portfolio.trades) > 2 * KEEP_RECENT:
            del self.portfolio.trades[:-KEEP_RECENT]
        if market.base.stored() <= self.history_limit + self.trim_chunk:
            return None
        market.trim(self.history_limit)
        self.history_start = int(market.base.columns["timestamp"].full[0])
        return self.history_start

    async def _prefetch_lower(self, candle: Candle) -> None:
        """Fetch 1m candles of this candle's span when a position may need a drill-down."""
        if not lower_timeframes(self.record.timeframe):
            return
        if not any(touch(p.direction, candle.open, candle.high, candle.low, p.active_stop,
                         p.take_profit) == BOTH for p in self.portfolio.positions):
            return
        try:
            self._lower["1m"] = await self.source.fetch(
                self.record.symbol, "1m", candle.timestamp, candle.timestamp + self.step_ms)
        except FetchError as exc:
            log.warning("run %s: no 1m candles for drill-down (%s): stop-loss assumed",
                        self.id, exc)

    async def _commit(self, last_candle_ts: int | None, equity: tuple[int, float, float] | None,
                      actor: str = "engine", history_start: int | None = None) -> None:
        """Write what the step changed in one transaction (retried while storage is down),
        then publish its events."""
        events = tuple(self._pending)
        self._pending.clear()
        pf = self.portfolio
        quiet: tuple[Event, ...] = ()
        if self.catching_up:  # trade events go out as one CaughtUp alert after the catch-up
            quiet = tuple(e for e in events if isinstance(
                e, TradeOpened | TradeClosed | SignalRejected | PositionReduced
                | PositionUpdated))
            self.caught_up += quiet
        exits = tuple(  # in fill order, as emitted
            (e.exit, e.trade.settled_on_recovery if isinstance(e, TradeClosed)
             else e.settled_on_recovery) for e in events
            if isinstance(e, TradeClosed | PositionReduced) and e.exit is not None)
        write = StepWrite(
            run_id=self.id, balance=pf.balance, next_position_id=pf.next_position_id,
            strategy_state=self.strategy.get_state(), last_candle_ts=last_candle_ts,
            mark_price=pf.mark_price, mark_ts=now_ms(),
            opened=tuple(e.position for e in events if isinstance(e, TradeOpened)),
            closed=tuple(e.trade for e in events if isinstance(e, TradeClosed)),
            open_rows=tuple(position_row(self.id, p) for p in pf.positions),
            exits=exits,
            equity=equity, events=tuple(e for e in events if e not in quiet),
            quiet_events=quiet, actor=actor,
            history_start=history_start,
            status=self._status[0] if self._status else None,
            status_reason=self._status[1] if self._status else None,
            guard_state=None if self.core is None or self.core.guards is None
            else self.core.guards.to_state(),
            perp=self.perp.take_write() if self.perp is not None else None)
        self._status = None
        await self.guard.write(lambda: self.store.commit_step(write),
                               f"run {self.id} candle {last_candle_ts}")
        for event in events:
            self.publish(event)
