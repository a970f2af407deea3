"""The charts of a finished backtest: price (with the strategy's indicators), equity, and the
monthly-returns heatmap for backtests of two months or more. Runs in the job worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data.symbols import quote_currency
from engine.backtest import BacktestResult
from engine.charts import render_equity_chart, render_monthly_heatmap, render_price_chart
from engine.plots import plot_lines
from engine.stats import monthly_returns, span_days

#: A backtest spanning at least this many days gets a monthly-returns heatmap (two months).
HEATMAP_MIN_DAYS = 59


def draw_backtest_charts(result: BacktestResult, strategy: Any, out: Path,
                         theme: str = "dark") -> dict[str, Path]:
    """Write ``price.png``, ``equity.png`` and (≥ two months) ``monthly.png`` into ``out``.

    ``strategy`` is the instance the backtest ran (bound: its indicators are read for the
    lines it declares in ``plots``). Returns ``{"price": path, "equity": path, "monthly": …}``.
    """
    cfg = result.config
    title = f"{result.strategy} · {cfg.symbol} {cfg.timeframe}"
    lines = plot_lines(strategy, result.warmup, len(result.candles))
    charts = {
        "price": render_price_chart(result.candles, result.trades, out / "price.png",
                                    title=title, timeframe=cfg.timeframe, theme=theme,
                                    lines=lines, symbol=cfg.symbol),
        "equity": render_equity_chart(result.candles.timestamp, result.equity,
                                      out / "equity.png", title=title,
                                      starting_balance=cfg.balance,
                                      benchmark=result.candles.close,
                                      quote=quote_currency(cfg.symbol), theme=theme),
    }
    if span_days(result.candles.timestamp, cfg.timeframe) >= HEATMAP_MIN_DAYS:
        months = monthly_returns(result.candles.timestamp, result.equity, cfg.timeframe,
                                 cfg.balance)
        charts["monthly"] = render_monthly_heatmap(months, out / "monthly.png", title=title,
                                                   theme=theme)
    return charts
