"""The core step shared by backtests and forward runs.

For each closed base candle, after the runner has made it visible (aggregate):

1. exits of the positions held during the candle, in the documented order (DESIGN §4, §4b):
   a gap through a level fills at the open; the stop in force (fixed or trailing) against the
   scale-out levels and the take-profit, with a drill-down when a stop and a target share the
   candle; then the time exit at the close; then the trailing level is moved with the
   candle's high (long) / low (short) — it is in force from the next candle;
2. perpetuals: book the funding settled during the candle on the positions still open
   (``engine.perp.funding``; none on spot);
3. tell the risk guards (``engine.risk``, when the run has any) this close's equity — a
   drawdown guard with flatten closes every position here — then ask the strategy for signals;
4. act on them at the candle's close: entries (refused while a guard is locked; slippage,
   fees, margin check), level updates, full or partial market exits — every invalid request
   is a rejection with a reason;
5. record equity at the close.

Forward runs call ``check_tick`` between closes to settle the levels in force on live ticks,
and ``close_position``/``update_levels`` for manual commands (``engine.core_commands``). A
leveraged position's liquidation level is part of its stop in force (``engine.perp``). Every
fill and level change is emitted as an event when an ``emit`` callback is given (the backtest
passes none, for speed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from engine.core_commands import ManualCommands
from engine.drilldown import DrillDown
from engine.events import PositionReduced, SignalRejected, TradeClosed, TradeOpened
from engine.exits import STOP as LEVEL_STOP
from engine.exits import move_trailing, resolve, touches_any
from engine.fills import BOTH, STOP, STOP_GAP, TAKE, TAKE_GAP, FillModel, touch
from engine.market import MarketData
from engine.perp.funding import pay_funding
from engine.portfolio import Portfolio
from engine.signals import check_open, close_size, entry_size, update_note
from engine.strategy import Strategy
from engine.types import NAN, ExitCounts, Position, Rejection, Signal, Trade

if TYPE_CHECKING:
    from engine.perp.leverage import MarginRules
    from engine.risk.guards import Guards

_TAKE_REASON = {TAKE: "take_profit", TAKE_GAP: "take_profit"}


class Core(ManualCommands):
    """One strategy trading one symbol: the shared step and the broker.

    Args:
        strategy: a bound strategy (``strategy.bind(market)`` already called).
        market: its market data; ``market.base`` is the execution timeframe.
        portfolio: cash and positions.
        fills: fees and slippage.
        drill: resolver for candles that hold both a stop and a target.
        run_id: id put on emitted events ("" in backtests).
        emit: called with each event; None for no events.
        guards: the run's risk guards (``engine.risk``); None for none. An entry they refuse
            is a rejection naming the guard (no ``SignalRejected`` event: the guards emit
            ``GuardTripped``/``GuardLifted`` once per trip instead).
        margin: leverage and maintenance margin rate (``engine.perp.MarginRules``); positions
            get a liquidation level when its leverage is above 1. None: no liquidation.
        funding: funding rates due per base candle open time (``FundingSchedule.due``;
            forward runs add each candle's before its step); None on spot: no funding.
    """

    def __init__(self, strategy: Strategy, market: MarketData, portfolio: Portfolio,
                 fills: FillModel, drill: DrillDown, run_id: str = "",
                 emit: Callable[[object], None] | None = None, *,
                 guards: Guards | None = None, margin: MarginRules | None = None,
                 funding: dict[int, float] | None = None) -> None:
        self.strategy = strategy
        self.market = market
        self.portfolio = portfolio
        self.fills = fills
        self.drill = drill
        self.run_id = run_id
        self.emit = emit
        self.guards = guards
        self.margin = margin if margin is not None and margin.liquidates else None
        self.funding_due = funding
        self._candle_close = 0  # close time (ms UTC) of the base candle exits belong to
        self.rejections: list[Rejection] = []
        self.exit_counts = ExitCounts()
        self.exposed_candles = 0
        self.equity: list[float] = []
        self.settling_recovery = False
        #: a paused run (DESIGN §4c): entries are refused with this reason (recorded, not
        #: alerted one by one); exits at levels, time exits and manual closes go on
        self.entries_paused: str | None = None
        #: paused by a strategy error: ``on_candle`` is not called until the run resumes
        self.skip_strategy = False
        #: forward runs: called with an exception ``on_candle`` raised (the step goes on
        #: without signals); None (backtests): the exception propagates
        self.on_strategy_error: Callable[[BaseException], None] | None = None
        self._base_ms = market._base_ms
        self._on_candle = strategy.on_candle
        self._view = market.view  # what on_candle reads: closed candles only
        self._taker = fills.taker_rate
        self._maker = fills.maker_rate
        self._slip = fills.slippage_rate
        cols = market.base.columns
        self._times = cols["timestamp"].list
        self._opens = cols["open"].list
        self._highs = cols["high"].list
        self._lows = cols["low"].list
        self._closes = cols["close"].list

    # ---- the step ------------------------------------------------------------------------------
    def step(self, i: int) -> float:
        """Process base candle ``i`` (already visible); returns equity at its close (quote)."""
        pf = self.portfolio
        positions = pf.positions
        ts = self._times[i]
        close = self._closes[i]
        if positions:
            self._candle_close = ts + self._base_ms
            self.exposed_candles += 1
            o, h, low = self._opens[i], self._highs[i], self._lows[i]
            for pos in positions[:]:
                pos.candles_held += 1
                if pos.take_profits or pos.max_hold or pos.trailing_stop_pct == \
                        pos.trailing_stop_pct:
                    self._managed_exits(pos, ts, o, h, low, close)
                else:
                    code = touch(pos.direction, o, h, low, pos.active_stop, pos.take_profit)
                    if code:
                        self._exit_at_level(pos, code, ts, o, self.drill)
            due = self.funding_due
            if due is not None and positions:  # after the candle's exits, before its signals
                rate = due.get(ts)
                if rate is not None:
                    pay_funding(pf, rate, close)
        pf.mark_price = close
        if self.guards is not None:  # this close's equity, after its exits, before entries
            if self.guards.on_close(ts + self._base_ms, pf.equity, len(positions)):
                self.close_all(close, ts + self._base_ms, "max_drawdown")  # flatten
            self._guard_events(ts + self._base_ms)
        if self.skip_strategy:
            signals = None
        else:
            try:
                signals = self._on_candle(self._view, pf)
            except Exception as exc:
                if self.on_strategy_error is None:
                    raise
                self.on_strategy_error(exc)
                signals = None
        if signals:
            self._apply(signals, ts + self._base_ms, close)
        if positions:
            equity = pf.balance
            for pos in positions:
                equity += (close - pos.entry_price) * pos.size * pos.direction
        else:
            equity = pf.balance
        self.equity.append(equity)
        return equity

    # ---- exits at levels -------------------------------------------------------------------------
    def _exit_at_level(self, pos: Position, code: int, ts: int, open_: float,
                       drill: DrillDown | None) -> None:
        """A position without scale-out levels: its stop in force against its take-profit."""
        if code == BOTH:
            if drill is None:
                code, fill_ts = STOP, ts
                self.exit_counts.conservative += 1
            else:
                res = drill.resolve(pos.direction, pos.active_stop, pos.take_profit, ts)
                code, fill_ts, open_ = res.code, res.ts, res.open_price
                if res.drilled:
                    self.exit_counts.drill_down += 1
                else:
                    self.exit_counts.conservative += 1
        else:
            fill_ts = ts
        if code in (STOP, STOP_GAP):
            self._stop_fill(pos, pos.active_stop if code == STOP else open_, fill_ts)
        else:
            price = pos.take_profit if code == TAKE else open_
            self._reduce(pos, pos.size, price, price * pos.size * self._maker, fill_ts,
                         _TAKE_REASON[code])

    def _managed_exits(self, pos: Position, ts: int, o: float, h: float, low: float,
                       close: float, at_close: bool = True) -> None:
        """Exits of a position with scale-out levels, a trailing stop or a time exit, then,
        at a candle's close, its time exit and the move of its trailing level (a live tick,
        ``at_close`` False, has no drill-down and moves nothing)."""
        resolver = self.drill if at_close else None
        if pos.take_profits:
            if touches_any(pos, h, low):
                self._scaled_exits(pos, ts, o, h, low, resolver)
        else:
            code = touch(pos.direction, o, h, low, pos.active_stop, pos.take_profit)
            if code:
                self._exit_at_level(pos, code, ts, o, resolver)
        if not at_close or pos not in self.portfolio.positions:
            return
        if pos.max_hold and pos.candles_held >= pos.max_hold:
            self._market_close(pos, close, ts + self._base_ms, "time_exit")
            return
        if pos.trailing_stop_pct == pos.trailing_stop_pct:
            move_trailing(pos, h, low)  # in force from the next candle

    def _scaled_exits(self, pos: Position, ts: int, o: float, h: float, low: float,
                      drill: DrillDown | None) -> None:
        """The stop in force against the scale-out levels and the take-profit (``resolve``)."""
        targets = [level[0] for level in pos.take_profits]
        if pos.take_profit == pos.take_profit:
            targets.append(pos.take_profit)
        res = resolve(pos.direction, o, h, low, pos.active_stop, targets, ts, drill)
        if res.conservative:
            self.exit_counts.conservative += 1
        elif res.drilled:
            self.exit_counts.drill_down += 1
        scale = len(pos.take_profits)
        levels = list(pos.take_profits)
        for fill in res.fills:
            if pos not in self.portfolio.positions:
                return
            if fill.kind == LEVEL_STOP:
                self._stop_fill(pos, fill.price, fill.ts)
                return
            if fill.index < scale:
                level = levels[fill.index]
                pos.take_profits.remove(level)
                size = min(level[1] * pos.initial_size, pos.size)
            else:
                size = pos.size
            self._reduce(pos, size, fill.price, fill.price * size * self._maker, fill.ts,
                         "take_profit")

    def _stop_fill(self, pos: Position, basis: float, ts: int) -> None:
        """The stop in force fills the whole remainder at ``basis`` worsened by slippage; at
        or beyond the liquidation level (the level in force, or a gap through it) the position
        is liquidated at that level instead (taker fee, no slippage: ``engine.perp``)."""
        liq = pos.liquidation_price
        if liq == liq and (basis - liq) * pos.direction <= 0.0:
            self._reduce(pos, pos.size, liq, liq * pos.size * self._taker, ts, "liquidation")
            return
        rate = self._slip
        price = basis * (1.0 + rate) if pos.direction < 0 else basis * (1.0 - rate)
        reason = "trailing_stop" if pos.trailing_active else "stop_loss"
        self._reduce(pos, pos.size, price, price * pos.size * self._taker, ts, reason)

    def check_tick(self, ts: int, open_: float, high: float, low: float, last: float) -> None:
        """Settle the levels in force on a live tick of the unclosed base candle.

        ``open_/high/low`` are the candle's values so far, ``last`` the newest trade price,
        ``ts`` the tick time (ms UTC). A stop and a target both inside the range seen so far
        cannot be ordered any more: the stop is assumed. Levels are those set at the last
        close (a tick never moves the trailing stop). The exit time is the open of the 1m
        candle holding the tick — what a 1m drill-down over stored candles finds — so the
        trade can be reproduced from candle data.
        """
        self.portfolio.mark_price = last
        self._candle_close = self.market.now + self._base_ms
        fill_ts = ts - ts % 60_000
        for pos in self.portfolio.positions[:]:
            if ts < pos.entry_time:
                continue
            if pos.take_profits:
                self._managed_exits(pos, fill_ts, open_, high, low, last, at_close=False)
                continue
            code = touch(pos.direction, open_, high, low, pos.active_stop, pos.take_profit)
            if code:
                self._exit_at_level(pos, code, fill_ts, open_, None)

    # ---- market exits --------------------------------------------------------------------------
    def _market_close(self, pos: Position, reference: float, ts: int, reason: str,
                      size: float | None = None) -> Trade | None:
        price = self.fills.market_price(reference, buying=pos.direction < 0)
        size = pos.size if size is None else size
        return self._reduce(pos, size, price, price * size * self._taker, ts, reason)

    def _reduce(self, pos: Position, size: float, price: float, fee: float, ts: int,
                reason: str) -> Trade | None:
        """Book a fill of ``size`` leaving ``pos``; emit it; returns the trade once closed."""
        exit_, trade = self.portfolio.reduce(pos, size, price, fee, ts, reason,
                                             self.settling_recovery)
        if self.guards is not None:
            self.guards.on_exit(self._candle_close, reason)
        if self.emit is not None:
            if trade is not None:
                self.emit(TradeClosed(self.run_id, ts, trade, self.strategy.name,
                                      self.market.timeframe, exit_))
            else:
                self.emit(PositionReduced(self.run_id, ts, exit_, pos.symbol, pos.side,
                                          pos.size, pos.initial_size, self.settling_recovery))
        return trade

    # ---- entries and signals ---------------------------------------------------------------------
    def _apply(self, signals: list[Signal], ts: int, close: float) -> None:
        pf = self.portfolio
        for sig in signals:
            action = sig.action
            if action == "open_long" or action == "open_short":
                if self.entries_paused is not None:
                    self.rejections.append(Rejection(ts, action, self.entries_paused))
                    continue
                self._open(sig, 1 if action == "open_long" else -1, ts, close)
            elif action == "close":
                self._close_signal(sig, ts, close)
            elif action == "update":
                pos = pf.get(sig.position_id) if sig.position_id is not None else None
                if not sig.mask:
                    self._reject(ts, action, "give stop_loss and/or take_profit to update")
                    continue
                problem = self.update_levels(
                    sig.position_id if sig.position_id is not None else -1,
                    sig.stop_loss if sig.mask & 1 else None,
                    sig.take_profit if sig.mask & 2 else None, close, ts, "strategy",
                    sig.tag or update_note(pos, sig))
                if problem is not None:
                    self._reject(ts, action, problem)
            elif action == "close_all":
                for pos in pf.positions[:]:
                    if sig.side is None or pos.side == sig.side:
                        self._market_close(pos, close, ts, "signal")
            else:
                self._reject(ts, str(action), f"unknown signal action {action!r}")

    def _close_signal(self, sig: Signal, ts: int, close: float) -> None:
        pos = self.portfolio.get(sig.position_id) if sig.position_id is not None else None
        if pos is None:
            self._reject(ts, "close", f"no open position with id {sig.position_id}")
            return
        size, problem = close_size(sig, pos)
        if problem is not None:
            self._reject(ts, "close", problem)
            return
        self._market_close(pos, close, ts, "signal", size)

    def _open(self, sig: Signal, direction: int, ts: int, close: float) -> None:
        pf = self.portfolio
        lock = None if self.guards is None else self.guards.check_entry(ts, len(pf.positions))
        if lock is not None:  # one GuardTripped alert per trip, not one per refused signal
            self.rejections.append(Rejection(ts, sig.action, lock.reason))
            self._guard_events(ts)
            return
        price = close * (1.0 + self._slip) if direction > 0 else close * (1.0 - self._slip)
        size, problem = entry_size(sig, pf.equity, price)
        if problem is None:
            problem = check_open(sig, direction, price)
        if problem is not None:
            self._reject(ts, sig.action, problem)
            return
        notional = price * size
        fee = notional * self._taker
        needed = notional / pf.leverage + fee
        free = pf.free_margin
        if needed > free + 1e-9:
            self._reject(ts, sig.action, f"needs {needed:.2f} margin incl. fee, "
                                         f"free margin is {free:.2f}")
            return
        levels = sorted(([p, f] for p, f in sig.take_profits), key=lambda lv: lv[0],
                        reverse=direction < 0)
        liq = NAN if self.margin is None else self.margin.liquidation_price(direction, price)
        pos = pf.open("long" if direction > 0 else "short", size, price, fee, ts,
                      sig.stop_loss, sig.take_profit, sig.tag, sig.trailing_stop_pct, levels,
                      sig.max_hold, liq)
        if self.emit is not None:
            # a copy: Position.__post_init__ copies each take-profit level too
            self.emit(TradeOpened(self.run_id, ts, replace(pos), self.strategy.name,
                                  self.market.timeframe))

    def _guard_events(self, ts: int) -> None:
        """Emit the guards' trips and lifts since the last call (forward runs)."""
        if self.emit is not None and self.guards is not None:
            for event in self.guards.events(self.run_id, ts):
                self.emit(event)

    def _reject(self, ts: int, action: str, reason: str) -> None:
        self.rejections.append(Rejection(ts, action, reason))
        if self.emit is not None:
            self.emit(SignalRejected(self.run_id, ts, action, reason))
