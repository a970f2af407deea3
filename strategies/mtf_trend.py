"""Multi-timeframe trend following: a 4h trend filter, entries on a lower timeframe.

The 4h trend is up when the last closed 4h candle closed above its EMA(``trend_period``) and
that EMA is rising; down in the mirror case. On the base timeframe, EMA(``fast``) crossing above
EMA(``slow``) opens a long while the 4h trend is up; crossing below opens a short while it is
down (``allow_short``). An opposite cross closes the position. Stop-loss and take-profit are
percentages of the signal candle's close.

The 4h candles come from ``data["4h"]``: the engine shows a 4h candle only once it has closed,
so the filter never peeks at the 4h candle still forming.
"""

from __future__ import annotations

from data.timeframes import timeframe_ms
from engine.indicators import crossover, ema
from engine.market import MarketData
from engine.portfolio import Portfolio
from engine.strategy import ParamError, Strategy
from engine.types import Signal

TREND_TIMEFRAME = "4h"


class MtfTrend(Strategy):
    """EMA cross entries on the base timeframe, filtered by the 4h EMA trend."""

    name = "mtf_trend"
    description = "EMA-cross entries on the base timeframe in the direction of the 4h trend"
    timeframes = ["15m", TREND_TIMEFRAME]
    params = {
        "trend_period": 50,
        "fast": 9,
        "slow": 21,
        "size_percent": 95.0,
        "stop_loss_pct": 1.5,
        "take_profit_pct": 3.0,
        "allow_short": True,
    }
    param_space = {"fast": "5:20", "slow": "15:60:5", "trend_period": "20:100:10"}
    plots = {"ema{fast}": "price", "ema{slow}": "price", "trend_ema": "price"}

    def validate(self) -> None:
        p = self.p
        base = self.timeframes[0]
        if timeframe_ms(base) >= timeframe_ms(TREND_TIMEFRAME):
            raise ParamError(f"mtf_trend trades below {TREND_TIMEFRAME}; pick a base timeframe "
                             f"such as 15m or 1h (got {base})")
        if not 1 <= p.fast < p.slow:
            raise ParamError(f"need 1 <= fast < slow, got fast={p.fast} slow={p.slow}")
        if p.trend_period < 2:
            raise ParamError("trend_period must be at least 2")
        if not 0 < p.size_percent <= 100:
            raise ParamError(f"size_percent must be in (0, 100], got {p.size_percent}")
        if p.stop_loss_pct < 0 or p.take_profit_pct < 0:
            raise ParamError("stop_loss_pct and take_profit_pct must be >= 0 (0 = off)")

    def warmup_candles(self) -> int:
        ratio = timeframe_ms(TREND_TIMEFRAME) // timeframe_ms(self.timeframes[0])
        return (2 * self.p.trend_period + 2) * ratio

    def on_init(self, data: MarketData) -> None:
        close = data.base.close
        fast = self.indicator(ema, close, self.p.fast, name=f"ema{self.p.fast}")
        slow = self.indicator(ema, close, self.p.slow, name=f"ema{self.p.slow}")
        self.cross = self.indicator(crossover, fast, slow, name="cross")
        self.trend_close = data[TREND_TIMEFRAME].close
        self.trend_ema = self.indicator(ema, self.trend_close, self.p.trend_period,
                                        name="trend_ema")

    def trend(self) -> int:
        """+1 up, -1 down, 0 unknown, from the closed 4h candles only."""
        if len(self.trend_ema) < 2:
            return 0
        now, before = self.trend_ema[-1], self.trend_ema[-2]
        close = self.trend_close[-1]
        if close > now and now > before:
            return 1
        if close < now and now < before:
            return -1
        return 0

    def on_candle(self, data: MarketData, portfolio: Portfolio) -> list[Signal] | None:
        cross = self.cross[-1]
        if cross == 0.0:
            return None
        p = self.p
        signals: list[Signal] = []
        side_against = "short" if cross > 0 else "long"
        if portfolio.positions_of(side_against):
            signals.append(Signal.close_all(side_against))
        trend = self.trend()
        wanted = 1 if cross > 0 else -1
        if trend == wanted and not portfolio.positions_of("long" if wanted > 0 else "short"):
            if wanted < 0 and not p.allow_short:
                return signals or None
            close = data.base.close[-1]
            sl, tp = p.stop_loss_pct / 100.0, p.take_profit_pct / 100.0
            stop = close * (1.0 - wanted * sl) if sl else None
            take = close * (1.0 + wanted * tp) if tp else None
            opener = Signal.open_long if wanted > 0 else Signal.open_short
            signals.append(opener(p.size_percent, stop_loss=stop, take_profit=take))
        return signals or None
