"""SMA crossover, long only.

The fast simple moving average of closes crossing above the slow one opens a long of
``size_percent`` % of equity; crossing below closes it. Stop-loss and take-profit, when set,
are percentages from the signal candle's close (0 = off); ``trailing_stop_pct`` > 0 adds a
trailing stop that far below the highest high since the entry (DESIGN §4b).
"""

from __future__ import annotations

from engine.indicators import crossover, sma
from engine.market import MarketData
from engine.portfolio import Portfolio
from engine.strategy import ParamError, Strategy
from engine.types import Signal


class SmaCross(Strategy):
    """Long when SMA(fast) crosses above SMA(slow); flat when it crosses below."""

    name = "sma_cross"
    description = "Long when the fast SMA crosses above the slow SMA, exit on the cross below"
    timeframes = ["1h"]
    params = {
        "fast": 20,
        "slow": 100,
        "size_percent": 95.0,
        "stop_loss_pct": 0.0,
        "take_profit_pct": 0.0,
        "trailing_stop_pct": 0.0,
    }
    param_space = {"fast": "5:50", "slow": "20:200:10"}
    plots = {"sma{fast}": "price", "sma{slow}": "price"}

    def validate(self) -> None:
        p = self.p
        if not 1 <= p.fast < p.slow:
            raise ParamError(f"need 1 <= fast < slow, got fast={p.fast} slow={p.slow}")
        if not 0 < p.size_percent <= 100:
            raise ParamError(f"size_percent must be in (0, 100], got {p.size_percent}")
        if p.stop_loss_pct < 0 or p.take_profit_pct < 0:
            raise ParamError("stop_loss_pct and take_profit_pct must be >= 0 (0 = off)")
        if not 0 <= p.trailing_stop_pct < 100:
            raise ParamError(f"trailing_stop_pct must be in [0, 100) (0 = off), got "
                             f"{p.trailing_stop_pct}")

    def warmup_candles(self) -> int:
        return self.p.slow

    def on_init(self, data: MarketData) -> None:
        close = data.base.close
        self.fast = self.indicator(sma, close, self.p.fast, name=f"sma{self.p.fast}")
        self.slow = self.indicator(sma, close, self.p.slow, name=f"sma{self.p.slow}")
        self.cross = self.indicator(crossover, self.fast, self.slow, name="cross")
        self._sl = self.p.stop_loss_pct / 100.0
        self._tp = self.p.take_profit_pct / 100.0
        self._trail = self.p.trailing_stop_pct or None

    def on_candle(self, data: MarketData, portfolio: Portfolio) -> list[Signal] | None:
        cross = self.cross[-1]
        if cross == 0.0:
            return None
        if cross > 0.0:
            if portfolio.positions:
                return None
            close = data.base.close[-1]
            return [Signal.open_long(
                self.p.size_percent,
                stop_loss=close * (1.0 - self._sl) if self._sl else None,
                take_profit=close * (1.0 + self._tp) if self._tp else None,
                trailing_stop_pct=self._trail,
            )]
        return [Signal.close_all()] if portfolio.positions else None
