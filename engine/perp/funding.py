"""Funding payments of perpetual positions.

At each funding settlement (time T, rate r: a fraction, 0.0001 = 0.01 %) every position open at
that moment pays or receives

    payment = size × price × r      (quote currency)

a long pays it when r > 0 and receives it when r < 0; a short the reverse. It is booked on the
balance at once and accumulated on the position (``Position.funding``, then ``Trade.funding``:
signed, negative = paid).

Which candle and which price. A settlement belongs to the base candle whose close is the first
at or after it — the candle with ``previous close < T ≤ close`` — and is charged in that
candle's core step (``engine.core``), after the exits the candle's range triggered (stops,
targets, liquidation, time exits: those positions left before T) and before the strategy's
signals at the close (a position opened at that close was not held at T). The price is that
candle's **close**. With candles of 8 h or less, whose grid contains the settlement times (00:00,
08:00, 16:00 UTC), the close is the price at T exactly; longer candles (1d, 1w) charge every
settlement inside them at their close. Backtests and forward runs apply the same rule in the same
step; a forward run learns the settlements from the ticker stream (or, backfilling, from REST).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from data.timeframes import timeframe_ms

if TYPE_CHECKING:
    from engine.portfolio import Portfolio


@dataclass(slots=True)
class FundingSchedule:
    """Funding due per base candle: ``due[open time]`` = the sum of the rates settled in
    ``(previous close, close]`` of that candle (ms UTC keys; only candles holding a
    settlement appear)."""

    due: dict[int, float] = field(default_factory=dict)

    @classmethod
    def for_candles(cls, candle_ts: np.ndarray, timeframe: str, settle_ts: np.ndarray,
                    rates: np.ndarray) -> FundingSchedule:
        """The schedule of candles with open times ``candle_ts`` (sorted, ms UTC) for the
        settlements at ``settle_ts`` (ms UTC, sorted) with ``rates`` (fractions). Settlements
        before the first candle's open or after the last close, and non-finite rates, are
        left out."""
        ts = np.asarray(candle_ts, dtype=np.int64)
        times = np.asarray(settle_ts, dtype=np.int64)
        values = np.asarray(rates, dtype=np.float64)
        due: dict[int, float] = {}
        if not len(ts) or not len(times):
            return cls(due)
        closes = ts + timeframe_ms(timeframe)
        idx = np.searchsorted(closes, times, side="left")
        keep = (idx < len(ts)) & (times > ts[0]) & np.isfinite(values)
        for i, rate in zip(idx[keep].tolist(), values[keep].tolist(), strict=True):
            key = int(ts[i])
            due[key] = due.get(key, 0.0) + rate
        return cls(due)


def due_between(settlements: dict[int, float], after: int, until: int) -> float | None:
    """The sum of the rates settled in ``(after, until]`` (ms UTC), or None when none was."""
    found = [rate for t, rate in settlements.items() if after < t <= until]
    return sum(found) if found else None


def pay_funding(portfolio: Portfolio, rate: float, price: float) -> float:
    """Book one settlement of ``rate`` at ``price`` (quote) on every open position of
    ``portfolio``; returns the total booked (quote, signed: negative = paid)."""
    total = 0.0
    for pos in portfolio.positions:
        amount = -pos.direction * pos.size * price * rate
        pos.funding += amount
        total += amount
    portfolio.balance += total
    return total
