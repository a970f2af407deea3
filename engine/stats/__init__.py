"""Statistics of trades and equity for the front-ends: pure functions, no I/O.

``trades``: wins/losses and PnL by exit reason and side, durations, streaks (``/stats``).
``periods``: realised PnL per day/week/month (``/daily`` …) and per strategy and symbol
(``/performance``). ``returns``: daily Sharpe/Sortino and monthly returns of an equity curve.
The service computes them (``engine.service``); the bot and the CLI only format them.
"""

from engine.stats.periods import PerformanceRow, PeriodRow, performance, period_table
from engine.stats.returns import MonthReturn, daily_ratios, monthly_returns, span_days
from engine.stats.trades import Group, TradeStats, reason_breakdown, trade_stats

__all__ = [
    "Group",
    "MonthReturn",
    "PerformanceRow",
    "PeriodRow",
    "TradeStats",
    "daily_ratios",
    "monthly_returns",
    "performance",
    "period_table",
    "reason_breakdown",
    "span_days",
    "trade_stats",
]
