"""Which levels of a managed position one candle fills, and in what order (DESIGN §4, §4b).

A position with scale-out levels has one stop in force (the tighter of its fixed and trailing
stop) and several targets: the pending scale-out levels and the take-profit, nearest first.
For one candle (open, high, low):

1. the open beyond the stop fills the whole remainder at the open (a gap), and nothing else;
2. targets the open is already beyond fill at the open, nearest first;
3. then, if the range reaches targets but not the stop, those targets fill at their prices,
   nearest first (several in one candle); the stop alone fills at its price;
4. the stop and a target both inside the range cannot be ordered at this resolution: the
   candle's span is searched at the next lower timeframe (4h → 1h → 15m → 5m → 1m), each lower
   candle read by these same rules with what is left after the fills before it; still
   ambiguous at 1m, or no lower data: the stop is assumed (the conservative choice, §4).

Levels never move inside a candle or a drill-down: the stop set at the previous close is the
one in force. ``resolve`` only decides; ``engine.core.Core`` turns the decisions into fills.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from data.timeframes import timeframe_ms
from engine.drilldown import DrillDown
from engine.types import Position

STOP = "stop"
TARGET = "target"


@dataclass(frozen=True, slots=True)
class LevelFill:
    """One decision: ``kind`` ``"stop"`` (the whole remainder) or ``"target"`` (target
    ``index`` into the list given to ``resolve``); ``ts`` the open time (ms UTC) of the finest
    candle that decided; ``price`` the fill basis (the level, or the open after a gap), quote."""

    kind: str
    index: int
    ts: int
    price: float
    gap: bool


@dataclass(slots=True)
class Resolution:
    """What ``resolve`` found: the fills in time order, and whether a drill-down decided
    (``drilled``) or the conservative fallback had to (``conservative``)."""

    fills: list[LevelFill] = field(default_factory=list)
    drilled: bool = False
    conservative: bool = False


def resolve(direction: int, open_: float, high: float, low: float, stop: float,
            targets: list[float], ts: int, drill: DrillDown | None) -> Resolution:
    """Fills of a position's levels inside one base candle (see the module doc).

    Args:
        direction: +1 long, -1 short.
        open_, high, low: the candle (quote).
        stop: the stop in force (quote; ``nan`` for none).
        targets: target prices (quote), nearest to the entry first; the caller knows which
            is a scale-out level and which the take-profit, and ignores fills that come after
            the position is gone.
        ts: the candle's open time (ms UTC).
        drill: lower-timeframe candles (None: no drill-down, e.g. on live ticks).
    """
    res = Resolution()
    pending = list(range(len(targets)))
    base = drill.base_timeframe if drill is not None else ""
    levels = drill.levels if drill is not None else []
    closed = _candle(direction, open_, high, low, stop, targets, pending, ts, drill, base,
                     levels, res)
    if not closed and res.drilled and _stop_hit(direction, low, high, stop):
        # the lower candles never reached the stop the base candle touched: assume it
        res.fills.append(LevelFill(STOP, -1, ts, stop, False))
        res.conservative = True
    return res


def _stop_hit(direction: int, low: float, high: float, stop: float) -> bool:
    return low <= stop if direction > 0 else high >= stop


def _beyond(direction: int, price: float, level: float) -> bool:
    """True when ``price`` is at or beyond a target ``level`` (in the profit direction)."""
    return price >= level if direction > 0 else price <= level


def _candle(direction: int, o: float, h: float, low: float, stop: float,
            targets: list[float], pending: list[int], ts: int, drill: DrillDown | None,
            timeframe: str, levels: list[str], res: Resolution) -> bool:
    """Apply one candle to what is pending; True once the stop has filled."""
    if _stop_hit(direction, o, o, stop):  # opened beyond the stop
        res.fills.append(LevelFill(STOP, -1, ts, o, True))
        return True
    while pending and _beyond(direction, o, targets[pending[0]]):  # opened beyond targets
        res.fills.append(LevelFill(TARGET, pending.pop(0), ts, o, True))
    extreme = h if direction > 0 else low
    reached = [k for k in pending if _beyond(direction, extreme, targets[k])]
    if not _stop_hit(direction, low, h, stop):
        for k in reached:
            res.fills.append(LevelFill(TARGET, k, ts, targets[k], False))
            pending.remove(k)
        return False
    if not reached:
        res.fills.append(LevelFill(STOP, -1, ts, stop, False))
        return True
    # the stop and a target inside one candle: look inside it, in time order
    if drill is not None and drill.source is not None and levels:
        end = ts + timeframe_ms(timeframe)
        for k, lower in enumerate(levels):
            candles = drill.source(lower, ts, end)
            if candles is None or len(candles) == 0:
                continue  # try a finer timeframe
            res.drilled = True
            t, op, hi, lo = (candles.timestamp.tolist(), candles.open.tolist(),
                             candles.high.tolist(), candles.low.tolist())
            for j in range(len(t)):
                if _candle(direction, op[j], hi[j], lo[j], stop, targets, pending, t[j],
                           drill, lower, levels[k + 1:], res):
                    return True
            return False
    # still ambiguous at the finest level, or no lower data: assume the stop
    res.fills.append(LevelFill(STOP, -1, ts, stop, False))
    res.conservative = True
    return True


def touches_any(pos: Position, high: float, low: float) -> bool:
    """Whether a candle's range reaches the stop in force, the nearest scale-out level or the
    take-profit (the cheap test before ``resolve``; an open beyond a level is in the range)."""
    nearest = pos.take_profits[0][0]
    take = pos.take_profit
    if pos.direction > 0:
        return low <= pos.active_stop or high >= nearest or high >= take
    return high >= pos.active_stop or low <= nearest or low <= take


def move_trailing(pos: Position, high: float, low: float) -> None:
    """At a close: the best price takes the candle's high (long) / low (short), the trailing
    level follows at ``trailing_stop_pct`` from it and never loosens; in force from the next
    candle (DESIGN §4b)."""
    pct = pos.trailing_stop_pct
    if pos.direction > 0:
        if high > pos.best_price:
            pos.best_price = high
        level = pos.best_price * (1.0 - pct / 100.0)
        if not level <= pos.trailing_stop:
            pos.trailing_stop = level
    else:
        if low < pos.best_price:
            pos.best_price = low
        level = pos.best_price * (1.0 + pct / 100.0)
        if not level >= pos.trailing_stop:
            pos.trailing_stop = level
    pos.refresh_stop()


def trailing_levels(pos: Position, timestamp: np.ndarray, high: np.ndarray,
                    low: np.ndarray) -> np.ndarray:
    """The trailing stop in force during each candle (open times ``timestamp``, ms UTC; highs
    and lows in quote), replayed from ``pos``'s entry with ``move_trailing`` itself: ``nan``
    for candles opening before the entry, and everywhere without a trailing stop. Shape of
    ``timestamp``. For charts: the path a trailing stop took (``pos`` is not changed)."""
    out = np.full(len(timestamp), np.nan)
    pct = pos.trailing_stop_pct
    if not math.isfinite(pct):
        return out
    first = int(np.searchsorted(timestamp, pos.entry_time, side="left"))
    path = replace(pos, best_price=pos.entry_price, take_profits=[],
                   trailing_stop=pos.entry_price * (1.0 - pos.direction * pct / 100.0))
    for i in range(first, len(timestamp)):
        out[i] = path.trailing_stop
        move_trailing(path, float(high[i]), float(low[i]))
    return out
