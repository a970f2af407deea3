"""Alert charts: one closed trade on its candles, or an open position on the recent candles.

Both are 4 × 3 inches (800 × 600 px), laid out for a phone: the title says the trade and its
result, horizontal lines mark entry, exit, stop-loss and take-profit with their prices written
at the right edge (no legend to decode), and indicator lines the strategy plots on the price
may be drawn under them. They render in a few tens of milliseconds (alerts wait for them).
Times are int ms UTC; prices and PnL in quote currency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from data.ohlcv import OHLCV
from data.symbols import quote_currency
from engine.charts import style
from engine.charts.bars import Bars, aggregate_bars, bar_centers, draw_candles, event_x
from engine.charts.price import draw_trades
from engine.charts.theme import SMALL_PT, Theme, get_theme
from engine.exits import trailing_levels
from engine.formatting import reason_text
from engine.plots import PlotLine
from engine.types import Exit, Position, Trade

TRADE_MAX_BARS = 90


def trade_window(candles: OHLCV, trade: Trade, context_bars: int) -> OHLCV:
    """The candles from ``context_bars`` before the entry candle to ``context_bars`` after the
    exit candle (clipped to what ``candles`` holds)."""
    ts = candles.timestamp
    first = int(np.searchsorted(ts, trade.entry_time, side="right")) - 1 - context_bars
    last = int(np.searchsorted(ts, trade.exit_time, side="right")) + context_bars
    return candles.take(slice(max(first, 0), max(min(last, len(candles)), 0)))


def build_trade_figure(candles: OHLCV, trade: Trade, *, title: str, context_bars: int = 30,
                       theme: str | Theme | None = None,
                       lines: Sequence[PlotLine] = (), exits: Sequence[Exit] = (),
                       steps: Sequence[Any] = ()) -> Figure:
    """The closed-trade chart as a ``Figure`` (``render_trade_chart`` writes it).

    ``lines`` are aligned with ``candles`` (price overlays only are drawn). ``exits`` are the
    trade's parts (``Exit``, fill order): with more than one, each is marked at its fill with
    the share of the position it took, and the exit line is the size-weighted average.
    ``steps`` are the fixed levels over time (objects with ``ts``, ``stop_loss``,
    ``take_profit``; ``engine.store.level_moves.LevelStep``): when they moved, their path is
    drawn.
    """
    th = get_theme(theme)
    window = trade_window(candles, trade, max(context_bars, 0))
    offset = int(np.searchsorted(candles.timestamp, window.timestamp[0])) if len(window) else 0
    bars = aggregate_bars(window, TRADE_MAX_BARS, style.infer_interval_ms(candles.timestamp))
    quote = quote_currency(trade.symbol)
    win = trade.pnl > 0
    unit = f" {quote}" if quote else ""
    subtitle = (f"{trade.side.upper()} · {trade.pnl:+,.2f}{unit} ({trade.pnl_pct:+.2f} %) · "
                f"{reason_text(trade.exit_reason)} · held "
                f"{style.format_duration(trade.duration_ms)}")
    fig, ax = _figure(th, title, subtitle)
    fig.texts[1].set_color(th.win if win else th.loss)
    if len(bars) == 0:
        style.no_data(ax, th, "no candles around this trade", SMALL_PT)
        return fig
    draw_candles(ax, bars, th)
    _overlays(ax, bars, lines, offset, len(window), th)
    ax.axvspan(style.to_datenum(trade.entry_time), style.to_datenum(trade.exit_time),
               color=th.win if win else th.loss, alpha=0.1, linewidth=0, zorder=1)
    parts = [e for e in exits if e.position_id == trade.id]
    scaled = len(parts) > 1
    stop_name = "trail" if trade.exit_reason == "trailing_stop" else "SL"
    levels = [(trade.take_profit, th.take_profit, "TP"), (trade.entry_price, th.entry, "entry"),
              (trade.exit_price, th.win if win else th.loss, "avg exit" if scaled else "exit"),
              (trade.stop_loss, th.stop_loss, stop_name)]
    _levels(ax, levels, th)
    _level_paths(ax, steps, trade.exit_time, th)
    if scaled:
        _entry_marker(ax, bars, trade.side, trade.entry_time, trade.entry_price, th)
        _part_markers(ax, bars, parts, trade.size, th, 1 if trade.side == "long" else -1)
    else:
        draw_trades(ax, bars, [trade], th, marker_size=40, levels=False)
    _finish(ax, bars, levels, th)
    return fig


def render_trade_chart(candles: OHLCV, trade: Trade, path: Path, *, title: str,
                       context_bars: int = 30, theme: str | Theme | None = None,
                       lines: Sequence[PlotLine] = (), exits: Sequence[Exit] = (),
                       steps: Sequence[Any] = ()) -> Path:
    """Write the chart of one closed trade (800 × 600 px PNG); returns ``path``.

    Args:
        candles: candles covering the trade (open times ms UTC); more is fine, the window is
            cut from them.
        trade: the closed trade.
        path: PNG file to write (parents created).
        title: the title line, e.g. ``"#12 BTC/USDT 1h · sma_cross"``.
        context_bars: candles shown before the entry and after the exit.
        theme: ``"dark"`` (default), ``"light"`` or a ``Theme``.
        lines: indicator lines aligned with ``candles``.
        exits: the trade's parts; several are marked one by one (scale-outs).
        steps: the fixed levels over time; moved levels are drawn as steps.
    """
    fig = build_trade_figure(candles, trade, title=title, context_bars=context_bars,
                             theme=theme, lines=lines, exits=exits, steps=steps)
    return style.write_png(fig, path)


def build_position_figure(candles: OHLCV, position: Position, *, title: str,
                          theme: str | Theme | None = None, mark: float | None = None,
                          lines: Sequence[PlotLine] = (),
                          max_bars: int = TRADE_MAX_BARS, exits: Sequence[Exit] = (),
                          steps: Sequence[Any] = ()) -> Figure:
    """An open position on the recent ``candles``: entry marker, entry/SL/TP lines, pending
    scale-out levels (TP1, TP2…), the trailing stop's path since the entry (replayed with the
    engine's rule, ``engine.exits.trailing_levels``), the parts already taken (``exits``) and
    the last price ``mark`` (quote) in the subtitle; ``steps`` as in ``build_trade_figure``."""
    th = get_theme(theme)
    bars = aggregate_bars(candles, max_bars, style.infer_interval_ms(candles.timestamp))
    quote = quote_currency(position.symbol)
    unit = f" {quote}" if quote else ""
    parts = [f"{position.side.upper()} {position.size:,.6g} @ "
             f"{style.format_price(position.entry_price)}{unit}"]
    if mark is not None and math.isfinite(mark):
        pnl = position.unrealised_pnl(mark)
        parts.append(f"open PnL {pnl:+,.2f}{unit}")
    fig, ax = _figure(th, title, " · ".join(parts))
    if len(bars) == 0:
        style.no_data(ax, th, "no recent candles", SMALL_PT)
        return fig
    draw_candles(ax, bars, th)
    _overlays(ax, bars, lines, 0, len(candles), th)
    levels = [(position.take_profit, th.take_profit, "TP"),
              (position.entry_price, th.entry, "entry"), (position.stop_loss, th.stop_loss, "SL")]
    levels += [(price, th.take_profit, f"TP{k}")
               for k, (price, _) in enumerate(position.take_profits, 1)]
    _levels(ax, levels, th)
    _level_paths(ax, steps, int(bars.end[-1]), th)
    trail = trailing_levels(position, candles.timestamp, candles.high, candles.low)
    if np.isfinite(trail).any():
        x = style.to_datenum(bars.start)
        ax.step(x, bars.sample(trail), where="post", color=th.stop_loss, linewidth=1.1,
                zorder=5)
        levels.append((position.trailing_stop, th.stop_loss, "trail"))
    _entry_marker(ax, bars, position.side, position.entry_time, position.entry_price, th)
    _part_markers(ax, bars, [e for e in exits if e.position_id == position.id],
                  position.initial_size, th, position.direction)
    _finish(ax, bars, levels, th)
    return fig


def render_position_chart(candles: OHLCV, position: Position, path: Path, *, title: str,
                          theme: str | Theme | None = None, mark: float | None = None,
                          lines: Sequence[PlotLine] = (), exits: Sequence[Exit] = (),
                          steps: Sequence[Any] = ()) -> Path:
    """Write the open-position chart (800 × 600 px PNG); returns ``path``."""
    fig = build_position_figure(candles, position, title=title, theme=theme, mark=mark,
                                lines=lines, exits=exits, steps=steps)
    return style.write_png(fig, path)


# ---- shared pieces ---------------------------------------------------------------------------
def _figure(th: Theme, title: str, subtitle: str) -> tuple[Figure, Axes]:
    fig = style.new_figure(th, 3.0)
    ax = fig.subplots(1, 1, gridspec_kw=style.frame(fig, right=0.8))
    style.style_axes(ax, th)
    style.titles(fig, th, title, subtitle)
    return fig, ax


def _level_paths(ax: Axes, steps: Sequence[Any], end_ts: int, th: Theme) -> None:
    """The stop-loss and take-profit as steps over time, when they moved (at least two
    steps); each step holds from its ``ts`` to the next (the last to ``end_ts``, ms UTC)."""
    if len(steps) < 2:
        return
    x = style.to_datenum(np.array([s.ts for s in steps] + [end_ts], dtype=np.int64))
    for attr, colour in (("stop_loss", th.stop_loss), ("take_profit", th.take_profit)):
        y = np.array([getattr(s, attr) for s in steps], dtype=np.float64)
        if np.isfinite(y).any() and len(set(y[np.isfinite(y)])) + np.isnan(y).any() > 1:
            ax.step(x, np.append(y, y[-1]), where="post", color=colour, linewidth=1.3,
                    zorder=5)


def _entry_marker(ax: Axes, bars: Bars, side: str, ts: int, price: float, th: Theme) -> None:
    x, on = event_x(bars, np.array([ts], dtype=np.int64))
    if on[0]:
        long = side == "long"
        ax.scatter(x, [price], s=60, marker="^" if long else "v",
                   c=th.long if long else th.short, edgecolors=th.background, linewidths=0.5,
                   zorder=7)


def _part_markers(ax: Axes, bars: Bars, parts: Sequence[Exit], initial_size: float,
                  th: Theme, direction: int = 1) -> None:
    """A dot at each part's fill (win/loss colour by its own PnL) with the share it took,
    written on the side the position profits (above for a long, below for a short)."""
    if not parts or not initial_size > 0:
        return
    x, on = event_x(bars, np.array([e.time for e in parts], dtype=np.int64))
    for xi, shown, part in zip(x, on, parts, strict=True):
        if not shown:
            continue
        colour = th.win if part.pnl > 0 else th.loss
        ax.scatter([xi], [part.price], s=34, marker="o", c=colour,
                   edgecolors=th.background, linewidths=0.4, zorder=7)
        ax.annotate(f"−{part.size / initial_size * 100:.0f}%", (xi, part.price),
                    xytext=(0, 6 * direction), textcoords="offset points", ha="center",
                    va="bottom" if direction > 0 else "top", fontsize=SMALL_PT, color=colour,
                    zorder=8, bbox={"boxstyle": "round,pad=0.15", "facecolor": th.background,
                                    "edgecolor": "none", "alpha": 0.8})


def _overlays(ax: Axes, bars: Bars, lines: Sequence[PlotLine], offset: int, count: int,
              th: Theme) -> None:
    x = bar_centers(bars)
    for k, line in enumerate(ln for ln in lines if ln.panel == "price"):
        values = np.asarray(line.values, dtype=np.float64)[offset:offset + count]
        if values.shape[0] == count:
            ax.plot(x, bars.sample(values), color=th.palette[k % len(th.palette)],
                    linewidth=1.0, alpha=0.9, zorder=4)


def _levels(ax: Axes, levels: list[tuple[float, str, str]], th: Theme) -> None:
    """Horizontal lines at each level (labels come in ``_finish``, once the scale is set)."""
    for price, colour, name in levels:
        if math.isfinite(price):
            style_ = "-" if name in ("entry", "exit", "avg exit") else (0, (3, 2))
            ax.axhline(price, color=colour, linewidth=0.9, linestyle=style_, alpha=0.95,
                       zorder=3)


def _labels(ax: Axes, levels: list[tuple[float, str, str]], lo: float, hi: float) -> None:
    """"name price" just right of the plot at each level, pushed apart so none overlap."""
    items = sorted(((p - lo) / (hi - lo), p, c, n) for p, c, n in levels if math.isfinite(p))
    gap = 0.12
    ys = [y for y, *_ in items]
    for i in range(1, len(ys)):
        ys[i] = max(ys[i], ys[i - 1] + gap)
    overflow = ys[-1] - 1.0 if ys else 0.0
    if overflow > 0:  # shift down, keeping the gaps, as far as the bottom allows
        ys = [y - overflow for y in ys]
        for i in range(len(ys) - 2, -1, -1):
            ys[i] = min(ys[i], ys[i + 1] - gap)
    for y, (_, price, colour, name) in zip(ys, items, strict=True):
        ax.annotate(f"{name}\n{style.format_price(price)}", (1.0, y), xycoords="axes fraction",
                    xytext=(3, 0), textcoords="offset points", ha="left", va="center",
                    fontsize=SMALL_PT, color=colour, linespacing=0.95, annotation_clip=False)


def _finish(ax: Axes, bars: Bars, levels: list[tuple[float, str, str]], th: Theme) -> None:
    values = [float(np.min(bars.low)), float(np.max(bars.high))] + \
        [p for p, _, _ in levels if math.isfinite(p)]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.01 or 1.0
    ax.set_ylim(lo - pad, hi + pad)
    _labels(ax, levels, lo - pad, hi + pad)
    ax.set_xlim(style.to_datenum(bars.start[0]), style.to_datenum(bars.end[-1]))
    style.setup_time_axis(ax, th)
