"""Resolving a candle that holds both the stop-loss and the take-profit (DESIGN §4).

The candle's span is searched in time order at the next lower timeframe of the chain
4h → 1h → 15m → 5m → 1m. The first lower candle that touches a level decides; if it touches
both, the search goes one level lower inside it. Still ambiguous at 1m, or no lower data at all:
the stop-loss is assumed (the conservative choice). Every lower candle is read with the same
rules as the base candle, so a lower candle that opens beyond a level fills at its open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from data.ohlcv import OHLCV
from data.timeframes import lower_timeframes, timeframe_ms
from engine.fills import BOTH, NONE, STOP, STOP_GAP, TAKE, touch

#: ``source(timeframe, start, end)`` → candles of ``timeframe`` with open time in
#: ``[start, end)``, or None when that timeframe is not available.
LowerSource = Callable[[str, int, int], OHLCV | None]


@dataclass(frozen=True, slots=True)
class Resolution:
    """Outcome: ``code`` is one of ``STOP, TAKE, STOP_GAP, TAKE_GAP`` (``engine.fills``).

    ``ts`` is the open time (ms UTC) of the finest candle that decided; ``open_price`` the open
    of that candle (used by the gap codes); ``drilled`` is False for the conservative fallback.
    """

    code: int
    ts: int
    open_price: float
    drilled: bool


class DrillDown:
    """Looks inside ambiguous candles of ``base_timeframe`` using ``source``.

    Args:
        source: provider of lower-timeframe candles; None means no lower data exists.
        base_timeframe: the execution timeframe whose candles get resolved.
    """

    def __init__(self, source: LowerSource | None, base_timeframe: str) -> None:
        self.source = source
        self.levels = lower_timeframes(base_timeframe)
        self.base_timeframe = base_timeframe

    def resolve(self, direction: int, stop_loss: float, take_profit: float,
                candle_ts: int) -> Resolution:
        """Decide which level of a position was hit first inside the base candle.

        Args:
            direction: +1 long, -1 short.
            stop_loss, take_profit: the position's levels (quote).
            candle_ts: open time (ms UTC) of the ambiguous base candle.
        """
        found = self._search(direction, stop_loss, take_profit, candle_ts,
                             self.base_timeframe, self.levels)
        return found or Resolution(STOP, candle_ts, stop_loss, drilled=False)

    def _search(self, direction: int, stop_loss: float, take_profit: float, start: int,
                timeframe: str, levels: list[str]) -> Resolution | None:
        if self.source is None:
            return None
        end = start + timeframe_ms(timeframe)
        for k, lower in enumerate(levels):
            candles = self.source(lower, start, end)
            if candles is None or len(candles) == 0:
                continue  # try a finer timeframe
            ts, o, h, low = (candles.timestamp.tolist(), candles.open.tolist(),
                             candles.high.tolist(), candles.low.tolist())
            for j in range(len(ts)):
                code = touch(direction, o[j], h[j], low[j], stop_loss, take_profit)
                if code == NONE:
                    continue
                if code == BOTH:
                    deeper = self._search(direction, stop_loss, take_profit, ts[j], lower,
                                          levels[k + 1:])
                    return deeper or Resolution(STOP, ts[j], o[j], drilled=False)
                return Resolution(code, ts[j], o[j], drilled=True)
            return None  # lower data disagrees with the candle: no decision from it
        return None


__all__ = ["STOP", "STOP_GAP", "TAKE", "DrillDown", "LowerSource", "Resolution"]
