"""PNG charts of candles, trades and equity (matplotlib Agg, safe to render in worker threads).

Times are int ms UTC; prices, equity and PnL in quote currency.
"""

from engine.charts.equity import drawdown_pct, max_drawdown, minmax_indices, render_equity_chart
from engine.charts.price import Bars, aggregate_bars, locate_bars, render_price_chart
from engine.charts.trade import render_trade_chart, trade_window

__all__ = [
    "Bars",
    "aggregate_bars",
    "drawdown_pct",
    "locate_bars",
    "max_drawdown",
    "minmax_indices",
    "render_equity_chart",
    "render_price_chart",
    "render_trade_chart",
    "trade_window",
]
