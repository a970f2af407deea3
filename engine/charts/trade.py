"""Trade chart: one closed trade on its candles, small enough for a Discord alert (600×350 px).

Times are int ms UTC; prices and PnL in quote currency.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes

from data.ohlcv import OHLCV
from data.symbols import quote_currency
from engine.charts import style
from engine.charts.price import Bars, aggregate_bars, draw_candles, draw_trades
from engine.types import Trade

TRADE_MAX_BARS = 120

_REASON_TEXT = {
    "stop_loss": "stop-loss",
    "take_profit": "take-profit",
    "signal": "signal",
    "end_of_data": "end of data",
    "manual": "manual",
}


def trade_window(candles: OHLCV, trade: Trade, context_bars: int) -> OHLCV:
    """The candles from ``context_bars`` before the entry candle to ``context_bars`` after the
    exit candle (clipped to what ``candles`` holds)."""
    ts = candles.timestamp
    first = int(np.searchsorted(ts, trade.entry_time, side="right")) - 1 - context_bars
    last = int(np.searchsorted(ts, trade.exit_time, side="right")) + context_bars
    return candles.take(slice(max(first, 0), max(min(last, len(candles)), 0)))


def render_trade_chart(candles: OHLCV, trade: Trade, path: Path, *, title: str,
                       context_bars: int = 40) -> Path:
    """Small chart of one closed trade, written as a 600×350 px PNG.

    Shows the candles around the trade (aggregated to at most 120 bars when it lasted long),
    the entry/exit markers, horizontal lines at entry, exit, stop-loss and take-profit prices
    and the net PnL (quote and percent), exit reason and holding time under the title.

    Args:
        candles: candles covering the trade (open times ms UTC); more is fine, the window
            is cut from them.
        trade: the closed trade.
        path: PNG file to write (parents created).
        title: chart title, e.g. ``"#12 BTC/USDT 1h · sma_cross"``.
        context_bars: candles shown before the entry and after the exit.

    Returns:
        ``path``.
    """
    window = trade_window(candles, trade, max(context_bars, 0))
    interval = style.infer_interval_ms(candles.timestamp)
    bars = aggregate_bars(window, TRADE_MAX_BARS, interval)
    quote = quote_currency(trade.symbol)
    win = trade.pnl > 0
    fig = style.new_figure(6, 3.5, 100)
    try:
        ax = fig.add_subplot()
        style.style_axes(ax)
        ax.tick_params(labelsize=7)
        if len(bars) == 0:
            ax.text(0.5, 0.5, "no candles around this trade", transform=ax.transAxes,
                    ha="center", va="center", fontsize=9, color=style.MUTED)
        else:
            draw_candles(ax, bars)
            x0 = style.to_datenum(bars.start[0])
            x1 = style.to_datenum(bars.end[-1])
            ax.axvspan(style.to_datenum(trade.entry_time), style.to_datenum(trade.exit_time),
                       color=style.WIN if win else style.LOSS, alpha=0.08, linewidth=0,
                       zorder=1)
            _draw_price_lines(ax, trade)
            draw_trades(ax, bars, [trade], marker_size=70, levels=False)
            ax.set_xlim(x0, x1)
            ax.set_ylim(*_limits(bars, trade))
            style.setup_time_axis(ax)
            ax.legend(loc="best", fontsize=6.5, framealpha=0.85, handlelength=1.6)
        fig.suptitle(style.plain(title), x=0.01, ha="left", fontsize=10, fontweight="bold")
        ax.set_title(style.plain(_summary(trade, quote)), loc="left", fontsize=8,
                     color=style.WIN if win else style.LOSS)
        ax.set_ylabel(f"price ({style.plain(quote) or 'quote'})", fontsize=7)
        return style.save_png(fig, path, 100)
    finally:
        style.close_figure(fig)


def _draw_price_lines(ax: Axes, trade: Trade) -> None:
    kind = style.EXIT_KINDS.get(trade.exit_reason, style.EXIT_KINDS["manual"])
    lines = [
        (trade.take_profit, style.TP_LEVEL, "--", "take-profit"),
        (trade.entry_price, style.ENTRY_LEVEL, "-", "entry"),
        (trade.exit_price, kind.color, ":", "exit"),
        (trade.stop_loss, style.SL_LEVEL, "--", "stop-loss"),
    ]
    for price, color, linestyle, name in lines:
        if math.isfinite(price):
            ax.axhline(price, color=color, linestyle=linestyle, linewidth=1.0, alpha=0.9,
                       zorder=3, label=f"{name} {style.format_price(price)}")


def _limits(bars: Bars, trade: Trade) -> tuple[float, float]:
    values = [float(np.min(bars.low)), float(np.max(bars.high)), trade.entry_price,
              trade.exit_price, trade.stop_loss, trade.take_profit]
    finite = [v for v in values if math.isfinite(v)]
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.06 or abs(hi) * 0.01 or 1.0
    return lo - pad, hi + pad


def _summary(trade: Trade, quote: str) -> str:
    reason = _REASON_TEXT.get(trade.exit_reason, trade.exit_reason)
    unit = f" {quote}" if quote else ""
    return (f"{trade.side.upper()} {trade.symbol} · PnL {trade.pnl:+,.2f}{unit} "
            f"({trade.pnl_pct:+.2f} %) · {reason} exit · held "
            f"{style.format_duration(trade.duration_ms)}")
