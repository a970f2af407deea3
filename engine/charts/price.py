"""Price chart for a phone: candles, the strategy's indicators, volume, and the trades.

Layout, top to bottom: a title line and a subtitle (span, bar width, trades), the candles with
the indicators the strategy declares for the price (legend inside the plot), one panel per
declared indicator panel (RSI, MACD…), and volume. Trades are drawn as entry triangles (long
▲, short ▼), exit dots coloured by outcome (win / loss), a thin entry→exit link and their own
stop-loss / take-profit segments. When more trades happened than can be told apart at 400 px
(``max_marked``), the markers give way to a panel of the trades' cumulative PnL, and the
subtitle says so. Times are int ms UTC; prices quote currency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from data.ohlcv import OHLCV
from data.symbols import base_currency, quote_currency
from data.timeframes import timeframe_ms
from engine.charts import style
from engine.charts.bars import (
    Bars,
    aggregate_bars,
    bar_centers,
    draw_candles,
    draw_volume,
    event_x,
)
from engine.charts.theme import Theme, get_theme
from engine.formatting import iso
from engine.plots import PlotLine
from engine.types import Position, Trade

#: Bars drawn at most: about 2.5 px per bar at 400 px wide.
PHONE_BARS = 140
#: More trades than this (or more than one per 3 bars) are summarised as a PnL panel.
MAX_MARKED_TRADES = 40


def draw_trades(ax: Axes, bars: Bars, trades: Sequence[Trade], theme: Theme, *,
                marker_size: float = 22, levels: bool = True) -> list[Line2D]:
    """Entry/exit markers, entry→exit links and (with ``levels``) each trade's SL/TP segments.

    Markers sit at the fill price on the bar whose span holds the fill time. Returns legend
    handles for what was drawn.
    """
    if not trades:
        return []
    side = np.array([t.side for t in trades])
    t_in = np.array([t.entry_time for t in trades], dtype=np.int64)
    t_out = np.array([t.exit_time for t in trades], dtype=np.int64)
    p_in = np.array([t.entry_price for t in trades], dtype=np.float64)
    p_out = np.array([t.exit_price for t in trades], dtype=np.float64)
    win = np.array([t.pnl for t in trades], dtype=np.float64) > 0
    x_in, in_on = event_x(bars, t_in)
    x_out, out_on = event_x(bars, t_out)
    link = np.where(win[:, None], to_rgba(theme.win, 0.8), to_rgba(theme.loss, 0.8))
    ax.add_collection(LineCollection(style.segments(x_in, p_in, x_out, p_out), colors=link,
                                     linewidths=0.9, zorder=4), autolim=False)
    handles: list[Line2D] = []
    if levels:
        half = 0.5 * bars.width_ms / style.DAY_MS
        for name, prices, colour in (
                ("stop-loss", [t.stop_loss for t in trades], theme.stop_loss),
                ("take-profit", [t.take_profit for t in trades], theme.take_profit)):
            price = np.asarray(prices, dtype=np.float64)
            ok = np.isfinite(price)
            if ok.any():
                ax.add_collection(LineCollection(
                    style.segments(x_in[ok] - half, price[ok], x_out[ok] + half, price[ok]),
                    colors=colour, linewidths=0.9, linestyles=(0, (2, 1.5)), zorder=4),
                    autolim=False)
                handles.append(Line2D([], [], color=colour, linestyle=(0, (2, 1.5)),
                                      linewidth=0.9, label=name))
    for key, marker, colour in (("long", "^", theme.long), ("short", "v", theme.short)):
        m = in_on & (side == key)
        if m.any():
            ax.scatter(x_in[m], p_in[m], s=marker_size, marker=marker, c=colour,
                       edgecolors=theme.background, linewidths=0.4, zorder=6)
            handles.append(_marker(marker, colour, theme, f"{key} entry"))
    for outcome, mask, colour in (("win", win, theme.win), ("loss", ~win, theme.loss)):
        m = out_on & mask
        if m.any():
            ax.scatter(x_out[m], p_out[m], s=marker_size, marker="o", c=colour,
                       edgecolors=theme.background, linewidths=0.4, zorder=6)
            handles.append(_marker("o", colour, theme, f"{outcome} exit"))
    return handles


def _marker(marker: str, colour: str, theme: Theme, label: str) -> Line2D:
    return Line2D([], [], linestyle="None", marker=marker, markersize=4.5,
                  markerfacecolor=colour, markeredgecolor=theme.background, label=label)


def build_price_figure(candles: OHLCV, trades: list[Trade], *, title: str, timeframe: str,
                       theme: str | Theme | None = None, lines: Sequence[PlotLine] = (),
                       open_positions: Sequence[Position] = (), max_bars: int = PHONE_BARS,
                       max_marked: int = MAX_MARKED_TRADES, symbol: str | None = None,
                       volume: bool = True) -> Figure:
    """The price chart as a matplotlib ``Figure`` (``render_price_chart`` writes it).

    Args:
        candles: the span to draw, ``timeframe`` candles (open times ms UTC, prices quote).
        trades: closed trades; those outside the span are left out.
        title: the title line, e.g. ``"sma_cross · BTC/USDT 1h"``.
        timeframe: candle length, e.g. ``"1h"``.
        theme: ``"dark"`` (default), ``"light"`` or a ``Theme``.
        lines: indicator lines aligned with ``candles`` (``engine.plots``).
        open_positions: drawn as entry markers with their SL/TP up to the last bar.
        max_bars: more candles than this are aggregated into at most this many bars.
        max_marked: above this many trades (or one per 3 bars) a PnL panel replaces markers.
        symbol: for the units (default: the trades' symbol).
        volume: draw the volume panel.
    """
    th = get_theme(theme)
    bars = aggregate_bars(candles, max_bars, timeframe_ms(timeframe))
    positions = list(open_positions)
    if len(bars):
        lo, hi = int(bars.start[0]), int(bars.end[-1])
        trades = [t for t in trades if t.exit_time >= lo and t.entry_time <= hi]
        positions = [p for p in positions if p.entry_time <= hi]
    symbol = symbol or next((t.symbol for t in trades), None) or \
        next((p.symbol for p in positions), "")
    marked = len(trades) <= max_marked and len(trades) <= max(3, len(bars) // 3)
    panels = list(dict.fromkeys(ln.panel for ln in lines if ln.panel != "price"))
    heights = [2.1] + [0.6] * len(panels) + ([0.7] if trades and not marked else []) + \
        ([0.45] if volume and len(bars) else [])
    fig = style.new_figure(th, 0.5 + 0.32 + sum(heights) + 0.06 * len(heights))
    axes = fig.subplots(len(heights), 1, sharex=True, squeeze=False,
                        gridspec_kw=style.frame(fig, height_ratios=heights))[:, 0]
    for ax in axes:
        style.style_axes(ax, th)
    price = axes[0]
    style.titles(fig, th, title, _subtitle(candles, bars, timeframe, trades, marked))
    if len(bars) == 0:
        style.no_data(price, th, "no candles in this span")
        return fig
    draw_candles(price, bars, th)
    handles = _draw_lines(price, bars, [ln for ln in lines if ln.panel == "price"], th, 0)
    palette_used = len(handles)
    if marked:
        handles += draw_trades(price, bars, trades, th)
    if positions:
        handles += _draw_positions(price, bars, positions, th)
    x0, x1 = style.to_datenum(bars.start[0]), style.to_datenum(bars.end[-1])
    price.set_xlim(x0, x1)
    price.set_ylim(*_price_limits(bars, trades if marked else [], positions))
    style.legend(price, th, handles, ncol=3 if len(handles) > 4 else 2)
    k = 1
    for name in panels:
        group = [ln for ln in lines if ln.panel == name]
        style.legend(axes[k], th, _draw_lines(axes[k], bars, group, th, palette_used),
                     ncol=3)
        palette_used += len(group)
        for level in sorted({lv for ln in group for lv in ln.levels}):
            axes[k].axhline(level, color=th.muted, linewidth=0.6, linestyle=(0, (2, 2)))
        k += 1
    if trades and not marked:
        _draw_trade_pnl(axes[k], trades, x0, th, quote_currency(symbol) if symbol else "")
        k += 1
    if volume:
        draw_volume(axes[k], bars, th)
        unit = base_currency(symbol) if symbol else ""
        style.label_panel(axes[k], th, f"volume{f' ({unit})' if unit else ''}")
    style.setup_time_axis(axes[-1], th)
    return fig


def render_price_chart(candles: OHLCV, trades: list[Trade], path: Path, *, title: str,
                       timeframe: str, open_positions: list[Position] | None = None,
                       max_bars: int = PHONE_BARS, theme: str | Theme | None = None,
                       lines: Sequence[PlotLine] = (), symbol: str | None = None,
                       max_marked: int = MAX_MARKED_TRADES) -> Path:
    """Write the price chart (``build_price_figure``) as an 800 px wide PNG; returns ``path``."""
    fig = build_price_figure(candles, trades, title=title, timeframe=timeframe, theme=theme,
                             lines=lines, open_positions=open_positions or [],
                             max_bars=max_bars, symbol=symbol, max_marked=max_marked)
    return style.write_png(fig, path)


def _draw_lines(ax: Axes, bars: Bars, lines: Sequence[PlotLine], theme: Theme,
                offset: int) -> list[Line2D]:
    x = bar_centers(bars)
    handles = []
    for k, line in enumerate(lines):
        colour = theme.palette[(offset + k) % len(theme.palette)]
        (drawn,) = ax.plot(x, bars.sample(line.values), color=colour, linewidth=1.1,
                           zorder=5, label=line.name)
        handles.append(drawn)
    if lines and any(ln.panel != "price" for ln in lines):
        values = np.concatenate([bars.sample(ln.values) for ln in lines] +
                                [np.asarray(ln.levels, dtype=np.float64) for ln in lines])
        finite = values[np.isfinite(values)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
            ax.set_ylim(lo - pad, hi + pad * 3.5)  # headroom for the legend
    return handles


def _draw_positions(ax: Axes, bars: Bars, positions: Sequence[Position],
                    theme: Theme) -> list[Line2D]:
    t_in = np.array([p.entry_time for p in positions], dtype=np.int64)
    p_in = np.array([p.entry_price for p in positions], dtype=np.float64)
    x_in, on = event_x(bars, t_in)
    x_end = style.to_datenum(bars.end[-1])
    handles: list[Line2D] = []
    for p, x in zip(positions, x_in, strict=True):
        for name, level, colour in (("stop-loss", p.stop_loss, theme.stop_loss),
                                    ("take-profit", p.take_profit, theme.take_profit)):
            if math.isfinite(level):
                ax.plot([x, x_end], [level, level], color=colour, linewidth=0.9,
                        linestyle=(0, (2, 1.5)), zorder=4)
                if name not in [h.get_label() for h in handles]:
                    handles.append(Line2D([], [], color=colour, linestyle=(0, (2, 1.5)),
                                          label=name))
    for key, marker, colour in (("long", "^", theme.long), ("short", "v", theme.short)):
        m = on & (np.array([p.side for p in positions]) == key)
        if m.any():
            ax.scatter(x_in[m], p_in[m], s=40, marker=marker, c=theme.background,
                       edgecolors=colour, linewidths=1.2, zorder=7)
            handles.append(Line2D([], [], linestyle="None", marker=marker, markersize=5,
                                  markerfacecolor=theme.background, markeredgecolor=colour,
                                  label=f"open {key}"))
    return handles


def _draw_trade_pnl(ax: Axes, trades: Sequence[Trade], x0: float, theme: Theme,
                    quote: str) -> None:
    """Cumulative realised PnL of ``trades`` at their exit times (a step line)."""
    order = sorted(trades, key=lambda t: t.exit_time)
    x = np.concatenate(([x0], style.to_datenum(np.array([t.exit_time for t in order]))))
    y = np.concatenate(([0.0], np.cumsum([t.pnl for t in order])))
    ax.step(x, y, where="post", color=theme.equity, linewidth=1.0, zorder=4)
    ax.fill_between(x, y, 0, where=y >= 0, step="post", color=theme.win, alpha=0.25,
                    linewidth=0)
    ax.fill_between(x, y, 0, where=y < 0, step="post", color=theme.loss, alpha=0.25,
                    linewidth=0)
    ax.axhline(0, color=theme.muted, linewidth=0.6)
    lo, hi = float(y.min()), float(y.max())
    pad = (hi - lo) * 0.12 or 1.0
    ax.set_ylim(lo - pad, hi + pad * 2.5)
    style.label_panel(ax, theme, f"trades' PnL, cumulative{f' ({quote})' if quote else ''}")


def _price_limits(bars: Bars, trades: Sequence[Trade],
                  positions: Sequence[Position]) -> tuple[float, float]:
    values = [float(np.min(bars.low)), float(np.max(bars.high))]
    for item in (*trades, *positions):
        values += [item.entry_price, item.stop_loss, item.take_profit]
    values += [t.exit_price for t in trades]
    finite = [v for v in values if math.isfinite(v)]
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.04 or abs(hi) * 0.01 or 1.0
    return lo - pad, hi + pad * 6  # the top sixth stays free for the legend


def span_text(first_ms: int, last_ms: int) -> str:
    """``"2019-01-01 → 12-31 UTC"`` (the year once when both days share it)."""
    a, b = iso(first_ms)[:10], iso(last_ms)[:10]
    return f"{a} → {b[5:] if a[:4] == b[:4] else b} UTC"


def _subtitle(candles: OHLCV, bars: Bars, timeframe: str, trades: Sequence[Trade],
              marked: bool) -> str:
    if len(bars) == 0:
        return f"{timeframe} candles"
    step = timeframe_ms(timeframe)
    span = span_text(int(candles.timestamp[0]), int(candles.timestamp[-1]) + step - 1)
    width = f"{style.format_duration(bars.width_ms)} bars" if bars.aggregated \
        else f"{timeframe} candles"
    n = len(trades)
    if not n:
        count = "no trades"
    elif marked:
        count = f"{n} trade{'s' * (n != 1)}"
    else:
        count = f"{n:,} trades (PnL panel)"
    return f"{span} · {width} · {count}"
