"""Returns of an equity curve by calendar period: daily Sharpe/Sortino and monthly returns.

An equity curve has one point per base candle, at its close (``timestamps`` are candle open
times, ms UTC; equity in quote currency). A period's equity is the last point whose close falls
in it; its return is that over the previous period's (the starting balance before the first).
Periods without a candle (exchange outages) are skipped, never invented.

Sharpe and Sortino from **daily** returns make runs on different timeframes comparable: a 1m
and a 1h run of the same trades give about the same figure. Crypto trades every day, so the
annualisation factor is √365 (risk-free rate 0; Sharpe 1994, Sortino & Price 1994).
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from data.timeframes import DAY_MS, timeframe_ms

DAYS_PER_YEAR = 365


@dataclass(frozen=True, slots=True)
class MonthReturn:
    """Return of one calendar month (UTC), percent of the equity at the month's start."""

    year: int
    month: int
    return_pct: float


def period_ends(key: np.ndarray) -> np.ndarray:
    """Indices of the last point of each run of equal ``key`` values (time-ordered points)."""
    if key.size == 0:
        return np.empty(0, dtype=np.int64)
    change = np.flatnonzero(key[1:] != key[:-1])
    return np.concatenate((change, [key.size - 1])).astype(np.int64)


def daily_equity(timestamps: np.ndarray, equity: np.ndarray,
                 timeframe: str) -> tuple[np.ndarray, np.ndarray]:
    """``(day, equity)``: the UTC day (ms of its 00:00) and the equity at its last close.

    A candle closing exactly at midnight counts for the day that just ended.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    eq = np.asarray(equity, dtype=np.float64)
    close = ts + timeframe_ms(timeframe)
    day = (close - 1) // DAY_MS
    last = period_ends(day)
    return day[last] * DAY_MS, eq[last]


def period_returns(values: np.ndarray, starting_balance: float) -> np.ndarray:
    """Simple returns of consecutive ``values``, the first against ``starting_balance``."""
    points = np.concatenate(([starting_balance], np.asarray(values, dtype=np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.diff(points) / points[:-1]


def sharpe_sortino(returns: np.ndarray, periods_per_year: float) -> tuple[float | None,
                                                                           float | None]:
    """Annualised ``(sharpe, sortino)`` of per-period ``returns``; None when undefined.

    ``sharpe`` = mean / std(ddof=1) × √periods; ``sortino`` = mean / √mean(min(r, 0)²) ×
    √periods. Needs at least two finite returns.
    """
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return None, None
    scale = math.sqrt(periods_per_year)
    mean = float(r.mean())
    std = float(r.std(ddof=1))
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    return (mean / std * scale if std > 0 else None,
            mean / downside * scale if downside > 0 else None)


def daily_ratios(timestamps: np.ndarray, equity: np.ndarray, timeframe: str,
                 starting_balance: float) -> tuple[float | None, float | None, str]:
    """``(sharpe, sortino, period)`` from daily returns, annualised with √365.

    Timeframes longer than a day have no daily points: their per-candle returns are used
    (annualised with candles per year) and ``period`` names that timeframe instead of ``"1d"``.
    """
    step = timeframe_ms(timeframe)
    if step > DAY_MS:
        returns = period_returns(equity, starting_balance)
        return (*sharpe_sortino(returns, DAYS_PER_YEAR * DAY_MS / step), timeframe)
    _, daily = daily_equity(timestamps, equity, timeframe)
    return (*sharpe_sortino(period_returns(daily, starting_balance), DAYS_PER_YEAR), "1d")


def monthly_returns(timestamps: np.ndarray, equity: np.ndarray, timeframe: str,
                    starting_balance: float) -> list[MonthReturn]:
    """One ``MonthReturn`` per calendar month (UTC) the curve touches, in time order."""
    ts = np.asarray(timestamps, dtype=np.int64)
    if ts.size == 0:
        return []
    close = ts + timeframe_ms(timeframe) - 1
    starts = _month_breaks(close)
    months = np.array([_month_key(int(t)) for t in close[starts]])
    key = np.repeat(months, np.diff(np.concatenate((starts, [ts.size]))))
    last = period_ends(key)
    returns = period_returns(np.asarray(equity, dtype=np.float64)[last], starting_balance)
    return [MonthReturn(int(k) // 12, int(k) % 12 + 1, float(r) * 100.0)
            for k, r in zip(key[last], returns, strict=True)]


def _month_key(ms: int) -> int:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.year * 12 + moment.month - 1


def _month_breaks(close: np.ndarray) -> np.ndarray:
    """Indices where a new calendar month starts (vectorised through month-start boundaries)."""
    first, last = _month_key(int(close[0])), _month_key(int(close[-1]))
    bounds = [_month_start_ms(k) for k in range(first + 1, last + 1)]
    cuts = np.searchsorted(close, np.array(bounds, dtype=np.int64), side="left")
    return np.unique(np.concatenate(([0], cuts[cuts < close.size]))).astype(np.int64)


def _month_start_ms(key: int) -> int:
    year, month = divmod(key, 12)
    return calendar.timegm((year, month + 1, 1, 0, 0, 0)) * 1000


def span_days(timestamps: np.ndarray, timeframe: str) -> float:
    """Days from the first candle's open to the last candle's close."""
    ts = np.asarray(timestamps, dtype=np.int64)
    if ts.size == 0:
        return 0.0
    return (int(ts[-1]) + timeframe_ms(timeframe) - int(ts[0])) / DAY_MS
