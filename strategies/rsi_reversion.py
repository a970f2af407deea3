"""RSI mean reversion.

Long when RSI climbs back above ``oversold`` (it was below on the previous candle); the long is
closed when RSI reaches ``exit_level``. With ``allow_short``, the mirror image: short when RSI
falls back below ``overbought``, covered when RSI drops to ``exit_level``. Optional stop-loss and
take-profit in percent of the signal candle's close (0 = off).
"""

from __future__ import annotations

from engine.indicators import rsi
from engine.market import MarketData
from engine.portfolio import Portfolio
from engine.strategy import ParamError, Strategy
from engine.types import Signal


class RsiReversion(Strategy):
    """Buy oversold RSI recoveries, exit at the mid level; optionally short overbought."""

    name = "rsi_reversion"
    description = "Long when RSI recovers above oversold, exit at exit_level (shorts optional)"
    timeframes = ["1h"]
    params = {
        "period": 14,
        "oversold": 30.0,
        "overbought": 70.0,
        "exit_level": 50.0,
        "allow_short": False,
        "size_percent": 95.0,
        "stop_loss_pct": 0.0,
        "take_profit_pct": 0.0,
    }
    param_space = {"period": "7:28", "oversold": "20:40:5", "exit_level": "45:60:5"}
    plots = {"rsi": "panel"}
    plot_levels = {"rsi": ("oversold", "exit_level", "overbought")}

    def validate(self) -> None:
        p = self.p
        if p.period < 2:
            raise ParamError(f"period must be at least 2, got {p.period}")
        if not 0 < p.oversold < p.exit_level < p.overbought < 100:
            raise ParamError("need 0 < oversold < exit_level < overbought < 100")
        if not 0 < p.size_percent <= 100:
            raise ParamError(f"size_percent must be in (0, 100], got {p.size_percent}")
        if p.stop_loss_pct < 0 or p.take_profit_pct < 0:
            raise ParamError("stop_loss_pct and take_profit_pct must be >= 0 (0 = off)")

    def warmup_candles(self) -> int:
        return 3 * self.p.period

    def on_init(self, data: MarketData) -> None:
        self.rsi = self.indicator(rsi, data.base.close, self.p.period, name="rsi")

    def _levels(self, close: float, direction: int) -> tuple[float | None, float | None]:
        sl, tp = self.p.stop_loss_pct / 100.0, self.p.take_profit_pct / 100.0
        stop = close * (1.0 - direction * sl) if sl else None
        take = close * (1.0 + direction * tp) if tp else None
        return stop, take

    def on_candle(self, data: MarketData, portfolio: Portfolio) -> list[Signal] | None:
        value, previous = self.rsi[-1], self.rsi[-2]
        p = self.p
        longs = portfolio.positions_of("long")
        shorts = portfolio.positions_of("short")
        if longs and value >= p.exit_level:
            return [Signal.close_all("long")]
        if shorts and value <= p.exit_level:
            return [Signal.close_all("short")]
        if portfolio.positions:
            return None
        close = data.base.close[-1]
        if previous < p.oversold <= value:
            stop, take = self._levels(close, 1)
            return [Signal.open_long(p.size_percent, stop_loss=stop, take_profit=take)]
        if p.allow_short and previous > p.overbought >= value:
            stop, take = self._levels(close, -1)
            return [Signal.open_short(p.size_percent, stop_loss=stop, take_profit=take)]
        return None
