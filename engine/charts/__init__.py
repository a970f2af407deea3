"""PNG charts of candles, trades and equity for a phone (matplotlib Agg, thread-safe).

Every chart is laid out to be read at 400 px wide in Discord (``engine.charts.theme``), in the
dark theme by default. Times are int ms UTC; prices, equity and PnL in quote currency.
"""

from engine.charts.bars import Bars, aggregate_bars, locate_bars
from engine.charts.equity import (
    build_equity_figure,
    drawdown_pct,
    max_drawdown,
    minmax_indices,
    render_equity_chart,
)
from engine.charts.heatmap import build_heatmap_figure, render_monthly_heatmap
from engine.charts.price import build_price_figure, render_price_chart
from engine.charts.theme import THEMES, Theme, get_theme, min_font_px
from engine.charts.trade import (
    build_position_figure,
    build_trade_figure,
    render_position_chart,
    render_trade_chart,
    trade_window,
)

__all__ = [
    "THEMES",
    "Bars",
    "Theme",
    "aggregate_bars",
    "build_equity_figure",
    "build_heatmap_figure",
    "build_position_figure",
    "build_price_figure",
    "build_trade_figure",
    "drawdown_pct",
    "get_theme",
    "locate_bars",
    "max_drawdown",
    "min_font_px",
    "minmax_indices",
    "render_equity_chart",
    "render_monthly_heatmap",
    "render_position_chart",
    "render_price_chart",
    "render_trade_chart",
    "trade_window",
]
