"""The core step shared by backtests and forward runs.

For each closed base candle, after the runner has made it visible (aggregate):

1. check exits of the positions held during the candle (stop-loss / take-profit, DESIGN §4);
2. ask the strategy for signals;
3. fill them at the candle's close (slippage, fees, margin check);
4. record equity at the close.

Forward runs call ``check_tick`` between closes to settle stop-loss/take-profit on live ticks,
and ``close_position`` for manual exits. Every fill is emitted as an event when an ``emit``
callback is given (the backtest passes none, for speed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from engine.drilldown import DrillDown
from engine.events import SignalRejected, TradeClosed, TradeOpened
from engine.fills import BOTH, STOP, STOP_GAP, TAKE, TAKE_GAP, FillModel, touch
from engine.market import MarketData
from engine.portfolio import Portfolio
from engine.strategy import Strategy
from engine.types import ExitCounts, Position, Rejection, Signal, Trade

_EXIT_REASON = {STOP: "stop_loss", STOP_GAP: "stop_loss", TAKE: "take_profit",
                TAKE_GAP: "take_profit"}


class Core:
    """One strategy trading one symbol: the shared step and the broker.

    Args:
        strategy: a bound strategy (``strategy.bind(market)`` already called).
        market: its market data; ``market.base`` is the execution timeframe.
        portfolio: cash and positions.
        fills: fees and slippage.
        drill: resolver for candles that hold both stop-loss and take-profit.
        run_id: id put on emitted events ("" in backtests).
        emit: called with each event; None for no events.
    """

    def __init__(self, strategy: Strategy, market: MarketData, portfolio: Portfolio,
                 fills: FillModel, drill: DrillDown, run_id: str = "",
                 emit: Callable[[object], None] | None = None) -> None:
        self.strategy = strategy
        self.market = market
        self.portfolio = portfolio
        self.fills = fills
        self.drill = drill
        self.run_id = run_id
        self.emit = emit
        self.rejections: list[Rejection] = []
        self.exit_counts = ExitCounts()
        self.exposed_candles = 0
        self.equity: list[float] = []
        self.settling_recovery = False
        self._base_ms = market._base_ms
        self._on_candle = strategy.on_candle
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
        if positions:
            self.exposed_candles += 1
            o, h, low = self._opens[i], self._highs[i], self._lows[i]
            for pos in positions[:]:
                code = touch(pos.direction, o, h, low, pos.stop_loss, pos.take_profit)
                if code:
                    self._exit_at_level(pos, code, ts, o, self.drill)
        close = self._closes[i]
        pf.mark_price = close
        signals = self._on_candle(self.market, pf)
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

    # ---- exits -----------------------------------------------------------------------------------
    def _exit_at_level(self, pos: Position, code: int, ts: int, open_: float,
                       drill: DrillDown | None) -> Trade:
        if code == BOTH:
            if drill is None:
                code, fill_ts, open_ = STOP, ts, open_
                self.exit_counts.conservative += 1
            else:
                res = drill.resolve(pos.direction, pos.stop_loss, pos.take_profit, ts)
                code, fill_ts, open_ = res.code, res.ts, res.open_price
                if res.drilled:
                    self.exit_counts.drill_down += 1
                else:
                    self.exit_counts.conservative += 1
        else:
            fill_ts = ts
        if code in (STOP, STOP_GAP):
            basis = pos.stop_loss if code == STOP else open_
            rate = self._slip
            price = basis * (1.0 + rate) if pos.direction < 0 else basis * (1.0 - rate)
            fee = price * pos.size * self._taker
        else:
            price = pos.take_profit if code == TAKE else open_
            fee = price * pos.size * self._maker
        return self._close_filled(pos, price, fee, fill_ts, _EXIT_REASON[code])

    def check_tick(self, ts: int, open_: float, high: float, low: float, last: float) -> None:
        """Settle stop-loss/take-profit on a live tick of the unclosed base candle.

        ``open_/high/low`` are the candle's values so far, ``last`` the newest trade price,
        ``ts`` the tick time (ms UTC). Both levels inside the range seen so far cannot be
        ordered any more: the stop-loss is assumed. The exit time is the open of the 1m candle
        holding the tick — what a 1m drill-down over stored candles finds — so the trade can be
        reproduced from candle data.
        """
        self.portfolio.mark_price = last
        fill_ts = ts - ts % 60_000
        for pos in self.portfolio.positions[:]:
            if ts < pos.entry_time:
                continue
            code = touch(pos.direction, open_, high, low, pos.stop_loss, pos.take_profit)
            if code:
                self._exit_at_level(pos, code, fill_ts, open_, None)

    def close_position(self, position_id: int, price: float, ts: int,
                       reason: str = "manual") -> Trade | None:
        """Market exit of one position at ``price`` (slippage and taker fee applied)."""
        pos = self.portfolio.get(position_id)
        if pos is None:
            return None
        return self._market_close(pos, price, ts, reason)

    def close_all(self, price: float, ts: int, reason: str) -> list[Trade]:
        """Market exit of every open position (e.g. ``end_of_data``)."""
        return [self._market_close(pos, price, ts, reason)
                for pos in self.portfolio.positions[:]]

    def _market_close(self, pos: Position, reference: float, ts: int, reason: str) -> Trade:
        price = self.fills.market_price(reference, buying=pos.direction < 0)
        return self._close_filled(pos, price, price * pos.size * self._taker, ts, reason)

    def _close_filled(self, pos: Position, price: float, fee: float, ts: int,
                      reason: str) -> Trade:
        trade = self.portfolio.close(pos, price, fee, ts, reason, self.settling_recovery)
        if self.emit is not None:
            self.emit(TradeClosed(self.run_id, ts, trade, self.strategy.name,
                                  self.market.timeframe))
        return trade

    # ---- entries and signal exits ------------------------------------------------------------
    def _apply(self, signals: list[Signal], ts: int, close: float) -> None:
        pf = self.portfolio
        for sig in signals:
            action = sig.action
            if action == "open_long" or action == "open_short":
                self._open(sig, 1 if action == "open_long" else -1, ts, close)
            elif action == "close":
                pos = pf.get(sig.position_id) if sig.position_id is not None else None
                if pos is None:
                    self._reject(ts, action, f"no open position with id {sig.position_id}")
                else:
                    self._market_close(pos, close, ts, "signal")
            elif action == "close_all":
                for pos in pf.positions[:]:
                    if sig.side is None or pos.side == sig.side:
                        self._market_close(pos, close, ts, "signal")
            else:
                self._reject(ts, str(action), f"unknown signal action {action!r}")

    def _open(self, sig: Signal, direction: int, ts: int, close: float) -> None:
        pf = self.portfolio
        price = close * (1.0 + self._slip) if direction > 0 else close * (1.0 - self._slip)
        if not math.isnan(sig.size):
            size = sig.size
        elif not math.isnan(sig.size_percent):
            size = pf.equity * sig.size_percent / 100.0 / price
        else:
            self._reject(ts, sig.action, "give size_percent or size")
            return
        if not size > 0:
            self._reject(ts, sig.action, f"size must be positive, got {size:g}")
            return
        stop, take = sig.stop_loss, sig.take_profit
        if direction > 0 and (stop >= price or take <= price):
            self._reject(ts, sig.action, f"long levels must be stop_loss < {price:.8g} < "
                                         f"take_profit (got {stop:g}, {take:g})")
            return
        if direction < 0 and (stop <= price or take >= price):
            self._reject(ts, sig.action, f"short levels must be take_profit < {price:.8g} < "
                                         f"stop_loss (got {take:g}, {stop:g})")
            return
        notional = price * size
        fee = notional * self._taker
        needed = notional / pf.leverage + fee
        free = pf.free_margin
        if needed > free + 1e-9:
            self._reject(ts, sig.action, f"needs {needed:.2f} margin incl. fee, "
                                         f"free margin is {free:.2f}")
            return
        pos = pf.open("long" if direction > 0 else "short", size, price, fee, ts, stop, take,
                      sig.tag)
        if self.emit is not None:
            self.emit(TradeOpened(self.run_id, ts, replace(pos), self.strategy.name,
                                  self.market.timeframe))

    def _reject(self, ts: int, action: str, reason: str) -> None:
        self.rejections.append(Rejection(ts, action, reason))
        if self.emit is not None:
            self.emit(SignalRejected(self.run_id, ts, action, reason))
