"""Sanity checks of candles and ticks before anything trades on them (pure functions).

A candle is plausible when every price (open, high, low, close, quote currency) is finite and
> 0, the volume (base units) is finite and ≥ 0, ``low ≤ min(open, close)``,
``max(open, close) ≤ high``, and its open time (ms UTC) is on the timeframe's grid (Monday
00:00 UTC for weeks, the epoch otherwise, see ``data.timeframes.bucket_origin``) and within
``[0, MAX_TIMESTAMP_MS)``. Confirmed candles and REST rows are held to these checks only.

Ticks (unconfirmed updates of the candle still open) can fill a stop-loss before the candle
closes, so one more check holds back a tick that does not fit what came before it:

* its open differs from the open earlier ticks of the same candle reported (the open of a
  candle never changes), or its high is below / its low above what earlier ticks of that
  candle reported (high and low only widen while a candle is open), or it belongs to a candle
  older than the one earlier ticks were for;
* its low or high lies more than ``MAX_TICK_MOVE`` (25 %) away from the reference price: the
  previous confirmed close of the topic, or, before any close was seen, the candle's open.
  The tick is held when ``low < ref × (1 − MAX_TICK_MOVE)`` or ``high > ref × (1 +
  MAX_TICK_MOVE)``.

Holding a tick back is safe: the confirmed candle still arrives and exits are checked on it,
so a real move is settled at the close instead of on the tick, and a fake one never fills.
After a long outage the last close may be far from the price; ticks are then held until the
first confirmed candle refreshes the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from data.ohlcv import Candle
from data.timeframes import bucket_origin, timeframe_ms

#: Largest move of a tick's low or high from the reference price (a fraction: 0.25 = 25 %).
MAX_TICK_MOVE = 0.25

#: Open times must lie in ``[0, MAX_TIMESTAMP_MS)`` ms: exact in float64 and far past any
#: real candle (year ~287,000), so a huge value cannot overflow int64 arithmetic later.
MAX_TIMESTAMP_MS = 2**53


@dataclass(frozen=True, slots=True)
class TickRange:
    """What the accepted ticks of one open candle reported: open time (ms UTC) and the open,
    highest high and lowest low (quote currency)."""

    timestamp: int
    open: float
    high: float
    low: float


def candle_problem(candle: Candle, timeframe: str) -> str | None:
    """Why ``candle`` of ``timeframe`` is not plausible (see the module doc), or None if it is.

    Raises:
        TimeframeError: for an unknown ``timeframe``.
    """
    ts = candle.timestamp
    if not 0 <= ts < MAX_TIMESTAMP_MS:
        return f"open time {ts} out of range"
    if (ts - bucket_origin(timeframe)) % timeframe_ms(timeframe):
        return f"open time {ts} off the {timeframe} grid"
    prices = (candle.open, candle.high, candle.low, candle.close)
    if not all(math.isfinite(p) and p > 0 for p in prices):
        return f"prices must be finite and > 0: o={candle.open} h={candle.high} " \
               f"l={candle.low} c={candle.close}"
    if not (math.isfinite(candle.volume) and candle.volume >= 0):
        return f"volume must be finite and >= 0: {candle.volume}"
    if candle.low > min(candle.open, candle.close) or max(candle.open, candle.close) > candle.high:
        return f"inconsistent prices: o={candle.open} h={candle.high} l={candle.low} " \
               f"c={candle.close}"
    return None


def valid_rows(table: np.ndarray, timeframe: str) -> np.ndarray:
    """Boolean mask of the plausible rows of a ``(n, 6)`` float64 table of
    ``timestamp, open, high, low, close, volume`` (the same checks as ``candle_problem``).

    Raises:
        TimeframeError: for an unknown ``timeframe``.
    """
    ts, o, h, low, c, v = (table[:, k] for k in range(6))
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(table).all(axis=1)
        ok &= (o > 0) & (h > 0) & (low > 0) & (c > 0) & (v >= 0)
        ok &= (ts >= 0) & (ts < MAX_TIMESTAMP_MS) & (ts == np.floor(ts))
        ok &= (low <= np.minimum(o, c)) & (np.maximum(o, c) <= h)
    whole = np.where(ok, ts, 0).astype(np.int64)
    ok &= (whole - bucket_origin(timeframe)) % timeframe_ms(timeframe) == 0
    return ok


def tick_problem(candle: Candle, seen: TickRange | None, last_close: float | None,
                 max_move: float = MAX_TICK_MOVE) -> str | None:
    """Why a tick (an unconfirmed ``candle`` that passed ``candle_problem``) is held back, or
    None to deliver it.

    Args:
        candle: the tick's candle so far.
        seen: what earlier accepted ticks of the topic reported (any candle), or None.
        last_close: the topic's previous confirmed close (quote currency), or None.
        max_move: the largest move of low/high from the reference price, a fraction.
    """
    if seen is not None:
        if candle.timestamp < seen.timestamp:
            return f"tick of candle {candle.timestamp} after ticks of {seen.timestamp}"
        if candle.timestamp == seen.timestamp:
            if candle.open != seen.open:
                return f"open {candle.open} differs from earlier ticks' {seen.open}"
            if candle.high < seen.high or candle.low > seen.low:
                return f"range {candle.low}..{candle.high} narrower than earlier ticks' " \
                       f"{seen.low}..{seen.high}"
    ref = candle.open if last_close is None else last_close
    if candle.low < ref * (1 - max_move) or candle.high > ref * (1 + max_move):
        return f"range {candle.low}..{candle.high} more than {max_move:.0%} from {ref}"
    return None


def seen_after(candle: Candle) -> TickRange:
    """The ``TickRange`` to keep once the tick ``candle`` is accepted."""
    return TickRange(candle.timestamp, candle.open, candle.high, candle.low)
