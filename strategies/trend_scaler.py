"""Trend breakout with risk-based size, three scale-out targets, break-even and a time exit.

Shows every position-management verb (DESIGN §4b):

* entry: the close breaks the highest high (lowest low) of the previous ``breakout`` candles
  while EMA(``fast``) is above (below) EMA(``slow``);
* stop-loss ``atr_stop`` × ATR(``atr_period``) from the close (``atr_stop``); the size risks
  ``risk_pct`` % of equity at that stop, fees included (``risk_size``), capped at
  ``max_size_percent`` % of equity in notional;
* three scale-out levels at ``tp1_r``, ``tp2_r`` and ``tp3_r`` times the risk R (entry −
  stop), a third of the initial size each (``take_profits``);
* once the first level has filled, the stop moves to the entry price (break-even,
  ``Signal.update``) when the price is still on the right side of it;
* a time exit after ``max_hold`` candles (0 = none).
"""

from __future__ import annotations

import math

import numpy as np

from engine.indicators import atr, ema, rolling_max, rolling_min
from engine.market import MarketData
from engine.portfolio import Portfolio
from engine.strategy import ParamError, Strategy, atr_stop, risk_size
from engine.types import Signal


def breakout_entries(close: np.ndarray, high: np.ndarray, low: np.ndarray,
                     fast_ema: np.ndarray, slow_ema: np.ndarray, breakout: int) -> np.ndarray:
    """+1 where the close breaks the previous ``breakout`` candles' high while the fast EMA is
    above the slow one, −1 for the mirror breakdown, 0 elsewhere (causal: i uses 0..i)."""
    upper = rolling_max(high, breakout, 1)
    lower = rolling_min(low, breakout, 1)
    with np.errstate(invalid="ignore"):
        up = (close > upper) & (fast_ema > slow_ema)
        down = (close < lower) & (fast_ema < slow_ema)
    return np.where(up, 1.0, np.where(down, -1.0, 0.0))


class TrendScaler(Strategy):
    """Breakouts in the EMA trend, sized by risk, scaled out in thirds, stop to break-even."""

    name = "trend_scaler"
    description = "Trend breakouts sized by risk; 3 scale-outs, break-even stop, time exit"
    timeframes = ["1h"]
    params = {
        "fast": 20,
        "slow": 50,
        "breakout": 20,
        "atr_period": 14,
        "atr_stop": 2.0,
        "risk_pct": 1.0,
        "max_size_percent": 95.0,
        "tp1_r": 1.0,
        "tp2_r": 2.0,
        "tp3_r": 3.0,
        "max_hold": 48,
        "fee_bps": 10.0,
        "allow_short": True,
    }

    def validate(self) -> None:
        p = self.p
        if not 1 <= p.fast < p.slow:
            raise ParamError(f"need 1 <= fast < slow, got fast={p.fast} slow={p.slow}")
        if p.breakout < 1 or p.atr_period < 1:
            raise ParamError("breakout and atr_period must be >= 1")
        if not p.atr_stop > 0:
            raise ParamError(f"atr_stop must be > 0, got {p.atr_stop}")
        if not 0 < p.risk_pct <= 100 or not 0 < p.max_size_percent <= 100:
            raise ParamError("risk_pct and max_size_percent must be in (0, 100]")
        if not 0 < p.tp1_r < p.tp2_r < p.tp3_r:
            raise ParamError("need 0 < tp1_r < tp2_r < tp3_r")
        if p.max_hold < 0 or p.fee_bps < 0:
            raise ParamError("max_hold and fee_bps must be >= 0")

    def warmup_candles(self) -> int:
        return max(3 * self.p.slow, self.p.breakout + 1, 3 * self.p.atr_period)

    def on_init(self, data: MarketData) -> None:
        b, p = data.base, self.p
        self.fast = self.indicator(ema, b.close, p.fast, name=f"ema{p.fast}")
        self.slow = self.indicator(ema, b.close, p.slow, name=f"ema{p.slow}")
        self.atr = self.indicator(atr, b.high, b.low, b.close, p.atr_period, name="atr")
        # the entry condition, vectorised once: the per-candle call reads one value
        self.entry = self.indicator(breakout_entries, b.close, b.high, b.low, self.fast,
                                    self.slow, p.breakout, name="entry")

    def on_candle(self, data: MarketData, portfolio: Portfolio) -> list[Signal] | None:
        if portfolio.positions:
            return self._manage(portfolio, data.base.close[-1])
        entry = self.entry[-1]
        if entry == 0.0 or (entry < 0 and not self.p.allow_short):
            return None
        atr_now = self.atr[-1]
        if math.isnan(atr_now) or atr_now <= 0:
            return None
        side = "long" if entry > 0 else "short"
        return self._enter(side, data.base.close[-1], atr_now, portfolio)

    def _enter(self, side: str, close: float, atr_now: float,
               portfolio: Portfolio) -> list[Signal]:
        p = self.p
        stop = atr_stop(close, atr_now, p.atr_stop, side)
        if stop <= 0:
            return []
        equity = portfolio.equity
        size = min(risk_size(equity, p.risk_pct, close, stop, p.fee_bps),
                   equity * p.max_size_percent / 100.0 / close)
        risk = abs(close - stop)
        sign = 1.0 if side == "long" else -1.0
        targets = [(close + sign * r * risk, 1.0 / 3.0) for r in (p.tp1_r, p.tp2_r, p.tp3_r)]
        if side == "short" and targets[-1][0] <= 0:
            return []
        opener = Signal.open_long if side == "long" else Signal.open_short
        return [opener(size=size, stop_loss=stop, take_profits=targets,
                       max_hold=p.max_hold, tag=f"breakout R={risk:.2f}")]

    def _manage(self, portfolio: Portfolio, close: float) -> list[Signal] | None:
        signals = []
        for pos in portfolio.positions:
            scaled = pos.size < pos.initial_size
            below_entry = (pos.stop_loss - pos.entry_price) * pos.direction < 0
            beyond = (close - pos.entry_price) * pos.direction > 0
            if scaled and below_entry and beyond:  # first target taken: risk nothing more
                signals.append(Signal.update(pos.id, stop_loss=pos.entry_price,
                                             tag="break-even"))
        return signals or None
