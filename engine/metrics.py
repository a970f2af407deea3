"""Backtest metrics: one pure function from (trades, equity curve) to numbers.

Definitions (docs/backtesting.md has them with worked examples):

* ``total_return_pct`` = (final equity / starting balance − 1) × 100.
* ``cagr_pct`` = ((final / start) ^ (1 / years) − 1) × 100, years = span / 365 days, the span
  running from the first traded candle's open to the last candle's close.
* ``max_drawdown_pct`` = min over t of (equity_t / max_{s≤t} equity_s − 1) × 100 (≤ 0), with the
  peak time (``max_drawdown_start``) and trough time (``max_drawdown_end``): candle close
  times, ms UTC (the start of the run when the peak is the starting balance).
* ``sharpe`` = mean(r) / std(r, ddof=1) × √A (risk-free rate 0; Sharpe 1994) and ``sortino`` =
  mean(r) / √(mean(min(r, 0)²)) × √A (target 0; Sortino & Price 1994) over **daily** returns
  r_d = equity at the last close of UTC day d / that of the day before − 1 (the first day
  measured from the starting balance), A = 365: runs on different timeframes compare
  (``engine.stats.returns``). ``returns_period`` is ``"1d"`` (a timeframe above a day uses its
  own candles, and names it). ``sharpe_per_candle`` / ``sortino_per_candle``: the same over
  per-candle returns, A = candles per 365-day year.
* ``calmar`` = CAGR % / |max drawdown %|. ``short_window`` is True when the traded span is
  under ``ANNUALISE_MIN_DAYS`` (90) days: CAGR and Calmar are then extrapolations (kept in the
  JSON, not shown).
* ``win_rate_pct`` = winning trades (pnl > 0) / trades × 100.
* ``profit_factor`` = Σ winning pnl / |Σ losing pnl| (``inf`` with wins and no losses).
* ``expectancy`` = mean net pnl per trade (quote); ``avg_win``/``avg_loss`` likewise per side.
* ``exposure_pct`` = base candles with a position held / traded candles × 100.
* ``fees_paid`` = Σ entry and exit fees; ``funding_paid`` = − Σ trade funding (quote: what the
  trades paid in funding net of what they received; negative when they received more;
  0 on spot — ``engine.perp.funding``).
* ``buy_and_hold_return_pct`` = (last close / first traded candle's close − 1) × 100, no fees.

Undefined values (e.g. Sharpe of a flat curve, win rate without trades) are ``None``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from data.timeframes import YEAR_MS, periods_per_year, timeframe_ms
from engine.stats.returns import daily_ratios, period_returns, sharpe_sortino, span_days
from engine.stats.trades import profit_factor
from engine.types import Trade

#: Spans shorter than this (days) flag CAGR and Calmar as unreliable (``short_window``).
ANNUALISE_MIN_DAYS = 90


@dataclass(frozen=True, slots=True)
class Metrics:
    """Performance figures of a backtest; money in quote currency, times ms UTC."""

    total_return_pct: float
    cagr_pct: float | None
    max_drawdown_pct: float
    max_drawdown_start: int | None
    max_drawdown_end: int | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    returns_period: str
    win_rate_pct: float | None
    profit_factor: float | None
    expectancy: float | None
    avg_win: float | None
    avg_loss: float | None
    best_trade_pct: float | None
    worst_trade_pct: float | None
    avg_duration_ms: float | None
    exposure_pct: float
    fees_paid: float
    num_trades: int
    buy_and_hold_return_pct: float | None
    starting_balance: float
    final_equity: float
    sharpe_per_candle: float | None = None
    sortino_per_candle: float | None = None
    span_days: float = 0.0
    short_window: bool = False
    funding_paid: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON: ``inf`` becomes the string ``"inf"``, ``nan`` becomes None."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and math.isinf(value):
                out[key] = "inf" if value > 0 else "-inf"
            elif isinstance(value, float) and math.isnan(value):
                out[key] = None
        return out


def drawdown_series(equity: np.ndarray) -> np.ndarray:
    """Drawdown of each point from the running peak, as a fraction ≤ 0, shape of ``equity``."""
    equity = np.asarray(equity, dtype=np.float64)
    if equity.size == 0:
        return equity
    peaks = np.maximum.accumulate(equity)
    return equity / peaks - 1.0


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def compute_metrics(trades: list[Trade], equity: np.ndarray, timestamps: np.ndarray,
                    timeframe: str, starting_balance: float, closes: np.ndarray,
                    exposed_candles: int) -> Metrics:
    """Metrics of one backtest.

    Args:
        trades: closed trades, in exit order.
        equity: equity at each traded base candle's close, shape ``(n,)`` (quote).
        timestamps: open time of those candles, ms UTC, shape ``(n,)``.
        timeframe: base timeframe: the period of the returns used for Sharpe and Sortino.
        starting_balance: quote currency.
        closes: close price of those candles, shape ``(n,)`` (for buy-and-hold).
        exposed_candles: how many of the ``n`` candles had a position held.
    """
    equity = np.asarray(equity, dtype=np.float64)
    n = equity.size
    final = float(equity[-1]) if n else starting_balance
    total_return = (final / starting_balance - 1.0) * 100.0

    step = timeframe_ms(timeframe)
    cagr = None
    if n:
        years = (int(timestamps[-1]) + step - int(timestamps[0])) / YEAR_MS
        if final <= 0:
            cagr = -100.0
        elif years > 0:
            exponent = math.log(final / starting_balance) / years
            # a short, profitable span annualises beyond float range: report it as infinite
            cagr = (math.exp(exponent) - 1.0) * 100.0 if exponent < 700 else math.inf

    dd_pct, dd_start, dd_end = 0.0, None, None
    if n:
        curve = np.concatenate(([starting_balance], equity))
        drawdown = drawdown_series(curve)
        trough = int(np.argmin(drawdown))
        if drawdown[trough] < 0:
            peak = int(np.argmax(curve[: trough + 1]))
            dd_pct = float(drawdown[trough]) * 100.0
            # curve[0] is the start (first candle's open); curve[k] the close of candle k-1
            dd_start = int(timestamps[0]) if peak == 0 else int(timestamps[peak - 1]) + step
            dd_end = int(timestamps[trough - 1]) + step

    sharpe_candle = sortino_candle = sharpe = sortino = None
    period = "1d"
    if n > 1:
        sharpe_candle, sortino_candle = sharpe_sortino(period_returns(equity, starting_balance),
                                                       periods_per_year(timeframe))
        sharpe, sortino, period = daily_ratios(timestamps, equity, timeframe, starting_balance)
    days = span_days(timestamps, timeframe) if n else 0.0
    calmar = cagr / abs(dd_pct) if cagr is not None and dd_pct < 0 else None

    pnls = [t.pnl for t in trades]
    wins = [p for p in pnls if p > 0]
    pcts = [t.pnl_pct for t in trades]

    bh = None
    if n and closes[0] > 0:
        bh = (float(closes[-1]) / float(closes[0]) - 1.0) * 100.0

    return Metrics(
        total_return_pct=total_return,
        cagr_pct=cagr,
        max_drawdown_pct=dd_pct,
        max_drawdown_start=dd_start,
        max_drawdown_end=dd_end,
        sharpe=sharpe,
        sortino=sortino,
        calmar=calmar,
        returns_period=period,
        win_rate_pct=len(wins) / len(trades) * 100.0 if trades else None,
        profit_factor=profit_factor(pnls),
        expectancy=_mean(pnls),
        avg_win=_mean(wins),
        avg_loss=_mean([p for p in pnls if p < 0]),
        best_trade_pct=max(pcts) if pcts else None,
        worst_trade_pct=min(pcts) if pcts else None,
        avg_duration_ms=_mean([float(t.duration_ms) for t in trades]),
        exposure_pct=exposed_candles / n * 100.0 if n else 0.0,
        fees_paid=sum(t.fees for t in trades),
        num_trades=len(trades),
        buy_and_hold_return_pct=bh,
        starting_balance=starting_balance,
        final_equity=final,
        sharpe_per_candle=sharpe_candle,
        sortino_per_candle=sortino_candle,
        span_days=days,
        short_window=days < ANNUALISE_MIN_DAYS,
        funding_paid=-sum(t.funding for t in trades) + 0.0,
    )
