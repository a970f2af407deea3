"""Donchian channel breakout, long and short (the Turtle entry).

A close above the highest high of the previous ``entry_period`` candles opens a long; a close
below the lowest low opens a short. A long is closed when the close falls below the lowest low
of the previous ``exit_period`` candles (a short mirrors that). With ``atr_stop`` > 0, each entry
carries a stop-loss ``atr_stop`` × ATR(``atr_period``) away from the signal candle's close.
With ``trail_atr`` > 0 it also carries a trailing stop ``trail_atr`` × ATR from the best price
(the distance is fixed at the entry, as a percentage of the entry close).
"""

from __future__ import annotations

import math

from engine.indicators import atr, rolling_max, rolling_min
from engine.market import MarketData
from engine.portfolio import Portfolio
from engine.strategy import ParamError, Strategy
from engine.types import Signal


class DonchianBreakout(Strategy):
    """Breakouts of the N-candle high/low, both directions, exits on the shorter channel."""

    name = "donchian_breakout"
    description = "Long above the N-candle high, short below the N-candle low, exit on M-candle"
    timeframes = ["4h"]
    params = {
        "entry_period": 20,
        "exit_period": 10,
        "atr_period": 20,
        "atr_stop": 2.0,
        "trail_atr": 0.0,
        "size_percent": 95.0,
        "allow_short": True,
    }
    param_space = {"entry_period": "10:60:5", "exit_period": "5:30:5", "atr_stop": "0:4:0.5"}
    plots = {"upper": "price", "lower": "price", "exit_upper": "price", "exit_lower": "price"}

    def validate(self) -> None:
        p = self.p
        if not 1 <= p.exit_period <= p.entry_period:
            raise ParamError("need 1 <= exit_period <= entry_period")
        if p.atr_stop < 0 or p.atr_period < 1:
            raise ParamError("atr_stop must be >= 0 (0 = off) and atr_period >= 1")
        if p.trail_atr < 0:
            raise ParamError("trail_atr must be >= 0 (0 = off)")
        if not 0 < p.size_percent <= 100:
            raise ParamError(f"size_percent must be in (0, 100], got {p.size_percent}")

    def warmup_candles(self) -> int:
        return max(self.p.entry_period, 3 * self.p.atr_period) + 1

    def on_init(self, data: MarketData) -> None:
        b, p = data.base, self.p
        self.upper = self.indicator(rolling_max, b.high, p.entry_period, 1, name="upper")
        self.lower = self.indicator(rolling_min, b.low, p.entry_period, 1, name="lower")
        self.exit_upper = self.indicator(rolling_max, b.high, p.exit_period, 1, name="exit_upper")
        self.exit_lower = self.indicator(rolling_min, b.low, p.exit_period, 1, name="exit_lower")
        self.atr = self.indicator(atr, b.high, b.low, b.close, p.atr_period, name="atr")

    def on_candle(self, data: MarketData, portfolio: Portfolio) -> list[Signal] | None:
        close = data.base.close[-1]
        p = self.p
        signals: list[Signal] = []
        holding_long = bool(portfolio.positions_of("long"))
        holding_short = bool(portfolio.positions_of("short"))
        if holding_long and close < self.exit_lower[-1]:
            signals.append(Signal.close_all("long"))
            holding_long = False
        if holding_short and close > self.exit_upper[-1]:
            signals.append(Signal.close_all("short"))
            holding_short = False
        atr_now = self.atr[-1]
        distance = p.atr_stop * atr_now if p.atr_stop and not math.isnan(atr_now) else 0.0
        trail = p.trail_atr * atr_now / close * 100.0 \
            if p.trail_atr and not math.isnan(atr_now) else None
        if trail is not None and not 0 < trail < 100:
            trail = None
        if close > self.upper[-1]:
            if holding_short:
                signals.append(Signal.close_all("short"))
                holding_short = False
            if not holding_long:
                stop = close - distance if distance else None
                signals.append(Signal.open_long(p.size_percent, stop_loss=stop,
                                                trailing_stop_pct=trail))
        elif p.allow_short and close < self.lower[-1]:
            if holding_long:
                signals.append(Signal.close_all("long"))
                holding_long = False
            if not holding_short:
                stop = close + distance if distance else None
                signals.append(Signal.open_short(p.size_percent, stop_loss=stop,
                                                 trailing_stop_pct=trail))
        return signals or None
