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
from data.timeframes import lower_timeframes, timeframe_ms
from engine.core import Core
from engine.drilldown import DrillDown
from engine.events import (
    CaughtUp,
    EngineError,
    Event,
    FeedLost,
    FeedRestored,
    PositionReduced,
    PositionUpdated,
    RunPaused,
    RunStopped,
    SignalRejected,
    TradeClosed,
    TradeOpened,
)
from engine.fills import BOTH, FillModel, touch
from engine.forward.source import CcxtCandleSource
from engine.forward.storage import StorageGuard
from engine.market import MarketData
from engine.portfolio import Portfolio
from engine.store.rows import position_row
from engine.store.store import RunRecord, StepWrite, Store, now_ms
from engine.strategy import Strategy
from engine.strategy_errors import describe
from engine.types import Trade

log = logging.getLogger(__name__)

#: Closed trades and rejections a live run keeps in memory (all of them are in the database).
KEEP_RECENT = 500


class RunFailed(RuntimeError):
    """The strategy raised; the run is stopped with status ``failed``."""


class StorageBusy(RuntimeError):
    """A command was refused because the database cannot take writes at the moment."""


class ForwardRun:
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

    # ---- construction ----------------------------------------------------------------------
    def prepare(self, history: OHLCV, resumed: bool) -> None:
        """Load ``history`` (all visible), bind the strategy, restore state when ``resumed``."""
        rec = self.record
        self.market = MarketData(rec.symbol, rec.timeframe, history, self.strategy.timeframes[1:],
                                 mirror=False)
        self.market.go_live()
        self.strategy.bind(self.market)
        fills = FillModel(rec.fee_bps, rec.maker_fee_bps, rec.slippage_bps)
        lower = lower_timeframes(rec.timeframe)
        drill = DrillDown(self._lower_source if lower else None, rec.timeframe)
        self.core = Core(self.strategy, self.market, self.portfolio, fills, drill, rec.id,
                         self._pending.append)
        self.core.on_strategy_error = self._strategy_error
        if len(history):
            self.portfolio.mark_price = float(history.close[-1])
            self.last_candle_ts = int(history.timestamp[-1])
        if resumed:
            self.strategy.set_state(rec.strategy_state)

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

    async def close_position(self, position_id: int, actor: str) -> Trade | None:
        """Paper market exit at the last price (``/close``); None for an unknown position.

        Raises:
            StorageBusy: while the database cannot take writes (nothing is changed).
        """
        if self.guard.failing:
            raise StorageBusy(f"the run database cannot take writes right now "
                              f"({self.guard.last_error}); nothing was closed, try again later")
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
        if self.guard.failing:
            raise StorageBusy(f"the run database cannot take writes right now "
                              f"({self.guard.last_error}); nothing was changed, try again later")
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
        """Restore a paused state read from the store (a restart); nothing is written."""
        assert self.core is not None
        self.paused = reason or "paused"
        self.core.entries_paused = f"run paused ({self.paused[:120]}): exits only"
        self.core.skip_strategy = self.paused.startswith("strategy ")

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

    # ---- internals -------------------------------------------------------------------------
    async def _process(self, candle: Candle, recovery: bool) -> None:
        core, market = self.core, self.market
        assert core is not None and market is not None
        await self._prefetch_lower(candle)
        market.append(candle)
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
        if not any(touch(p.direction, candle.open, candle.high, candle.low, p.stop_loss,
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
            status_reason=self._status[1] if self._status else None)
        self._status = None
        await self.guard.write(lambda: self.store.commit_step(write),
                               f"run {self.id} candle {last_candle_ts}")
        for event in events:
            self.publish(event)

    def caught_up_event(self, away_ms: int, candles: int) -> CaughtUp | None:
        """The one alert for what a catch-up settled (None when it settled nothing)."""
        events, self.caught_up = self.caught_up, []
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
