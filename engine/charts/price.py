"""Price chart: candlesticks of a span with the trades drawn on top.

Large spans are aggregated into at most ``max_bars`` bars of a "nice" width (``4h``, ``1d``,
``1w``…, aligned to the UTC time grid), so a year of minute candles draws as fast as a week
of hourly ones. Drawing is vectorised: one ``LineCollection`` for the wicks and one
``PolyCollection`` for the bodies. Times are int ms UTC; prices quote currency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgba

from data.ohlcv import OHLCV
from data.symbols import quote_currency
from data.timeframes import timeframe_ms
from engine.charts import style
from engine.types import Position, Trade

_NICE_MINUTES = (1, 2, 3, 5, 10, 15, 30, 60, 120, 180, 240, 360, 480, 720,
                 1440, 2880, 4320, 10080, 20160, 40320)
_NICE_WIDTHS_MS = tuple(m * style.MINUTE_MS for m in _NICE_MINUTES)
_WEEK_ORIGIN_MS = 4 * style.DAY_MS  # Monday 1970-01-05 00:00 UTC


@dataclass(frozen=True, slots=True)
class Bars:
    """Candles as drawn: bar ``i`` covers ``[start[i], end[i])`` (ms UTC), OHLC in quote.

    ``width_ms`` is the nominal bar width; ``source_ms`` the length of the candles they were
    made of (equal when nothing was aggregated).
    """

    start: np.ndarray
    end: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    width_ms: int
    source_ms: int

    def __len__(self) -> int:
        return int(self.start.shape[0])

    @property
    def aggregated(self) -> bool:
        """True when each bar may hold more than one source candle."""
        return self.width_ms != self.source_ms


def aggregate_bars(candles: OHLCV, max_bars: int, interval_ms: int) -> Bars:
    """Group ``candles`` (each ``interval_ms`` long) into at most ``max_bars`` bars.

    With ``len(candles) <= max_bars`` every candle is its own bar. Otherwise the bar width is
    the smallest nice multiple of ``interval_ms`` (``2h, 4h, 1d, 1w``…, else a plain multiple)
    giving ``<= max_bars`` bars on the UTC grid (weeks start Monday); each bar holds the first
    open, highest high, lowest low and last close of its candles.

    Raises:
        ValueError: when ``max_bars < 1`` or ``interval_ms < 1``.
    """
    if max_bars < 1 or interval_ms < 1:
        raise ValueError(f"need max_bars >= 1 and interval_ms >= 1, got {max_bars}, {interval_ms}")
    ts = np.asarray(candles.timestamp, dtype=np.int64)
    n = ts.shape[0]
    if n <= max_bars:
        return Bars(ts, ts + interval_ms, candles.open, candles.high, candles.low, candles.close,
                    interval_ms, interval_ms)
    width = interval_ms * math.ceil(n / max_bars)  # fewer candles per bar cannot fit
    width = _next_width(width, interval_ms, inclusive=True)
    while True:
        origin = _WEEK_ORIGIN_MS if width % style.WEEK_MS == 0 else 0
        bucket = (ts - origin) // width
        if 1 + np.count_nonzero(bucket[1:] != bucket[:-1]) <= max_bars:
            break
        width = _next_width(width, interval_ms)
    first = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    last = np.concatenate((first[1:], [n])) - 1
    start = bucket[first] * width + origin
    return Bars(start, start + width, candles.open[first],
                np.maximum.reduceat(candles.high, first), np.minimum.reduceat(candles.low, first),
                candles.close[last], int(width), interval_ms)


def _next_width(width: int, interval_ms: int, *, inclusive: bool = False) -> int:
    """The next nice multiple of ``interval_ms`` above (or at) ``width`` ms, else ``width``
    itself (inclusive) or its double: a multiple of ``interval_ms`` whenever ``width`` is."""
    nice = (w for w in _NICE_WIDTHS_MS
            if (w >= width if inclusive else w > width) and w % interval_ms == 0)
    return next(nice, width if inclusive else 2 * width)


def locate_bars(bars: Bars, times: np.ndarray | Sequence[int]) -> np.ndarray:
    """Index of the bar whose span ``[start, end)`` holds each time (ms UTC), ``-1`` if none.

    A time in a gap between bars maps to the bar before the gap; a time equal to the last bar's
    end (a fill at the final candle's close) maps to the last bar; a time before the first bar
    or after the last one gives ``-1``.
    """
    t = np.asarray(times, dtype=np.int64)
    if len(bars) == 0:
        return np.full(t.shape, -1, dtype=np.int64)
    idx = np.searchsorted(bars.start, t, side="right").astype(np.int64) - 1
    idx[t > bars.end[-1]] = -1
    return idx


def bar_centers(bars: Bars) -> np.ndarray:
    """Centre of each bar in matplotlib date numbers."""
    return style.to_datenum((bars.start + bars.end) / 2)


def draw_candles(ax: Axes, bars: Bars) -> None:
    """Draw ``bars`` as candlesticks on ``ax`` (x in date numbers) with two collections."""
    if len(bars) == 0:
        return
    x = bar_centers(bars)
    half = 0.35 * bars.width_ms / style.DAY_MS
    up = bars.close >= bars.open
    colors = np.where(up[:, None], to_rgba(style.UP), to_rgba(style.DOWN))
    ax.add_collection(LineCollection(style.segments(x, bars.low, x, bars.high), colors=colors,
                                     linewidths=0.7, zorder=2))
    lo = np.minimum(bars.open, bars.close)
    hi = np.maximum(bars.open, bars.close)
    min_height = (np.max(bars.high) - np.min(bars.low)) * 0.002
    hi = np.maximum(hi, lo + min_height)  # keep doji bodies visible
    verts = np.stack((np.column_stack((x - half, lo)), np.column_stack((x - half, hi)),
                      np.column_stack((x + half, hi)), np.column_stack((x + half, lo))), axis=1)
    ax.add_collection(PolyCollection(verts, facecolors=colors, edgecolors=colors,
                                     linewidths=0.4, zorder=3))


def _event_x(bars: Bars, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (date numbers) of events at ``times`` (ms UTC) and whether they fall on a bar."""
    idx = locate_bars(bars, times)
    on_bar = idx >= 0
    x = style.to_datenum(times)
    if len(bars):
        x[on_bar] = bar_centers(bars)[idx[on_bar]]
    return x, on_bar


def draw_trades(ax: Axes, bars: Bars, trades: Sequence[Trade], *, marker_size: float = 46,
                levels: bool = True) -> list[str]:
    """Draw entry/exit markers, entry→exit lines and (with ``levels``) SL/TP segments.

    Markers sit at the fill price on the bar whose span contains the fill time. Returns the
    legend keys used: ``"long"``, ``"short"``, exit reasons, ``"win"``, ``"loss"``, ``"sl"``,
    ``"tp"``.
    """
    if not trades:
        return []
    side = np.array([t.side for t in trades])
    reason = np.array([t.exit_reason for t in trades])
    t_in = np.array([t.entry_time for t in trades], dtype=np.int64)
    t_out = np.array([t.exit_time for t in trades], dtype=np.int64)
    p_in = np.array([t.entry_price for t in trades], dtype=np.float64)
    p_out = np.array([t.exit_price for t in trades], dtype=np.float64)
    win = np.array([t.pnl for t in trades], dtype=np.float64) > 0
    x_in, in_on = _event_x(bars, t_in)
    x_out, out_on = _event_x(bars, t_out)
    used: list[str] = []

    link_colors = np.where(win[:, None], to_rgba(style.WIN), to_rgba(style.LOSS))
    ax.add_collection(LineCollection(style.segments(x_in, p_in, x_out, p_out), colors=link_colors,
                                     linewidths=1.1, alpha=0.85, zorder=4), autolim=False)
    used += [k for k, m in (("win", win), ("loss", ~win)) if m.any()]

    if levels:
        half = 0.5 * bars.width_ms / style.DAY_MS
        for key, price, color in (("sl", [t.stop_loss for t in trades], style.SL_LEVEL),
                                  ("tp", [t.take_profit for t in trades], style.TP_LEVEL)):
            used += style.draw_levels(ax, np.asarray(price, dtype=np.float64), x_in - half,
                                x_out + half, color, key)

    for key, kind in style.ENTRY_KINDS.items():
        m = in_on & (side == key)
        if m.any():
            style.scatter_markers(ax, x_in[m], p_in[m], kind, marker_size)
            used.append(key)
    for key, kind in style.EXIT_KINDS.items():
        m = out_on & (reason == key)
        if m.any():
            style.scatter_markers(ax, x_out[m], p_out[m], kind, marker_size)
            used.append(key)
    return used


def _draw_open_positions(ax: Axes, bars: Bars, positions: Sequence[Position],
                         marker_size: float) -> list[str]:
    t_in = np.array([p.entry_time for p in positions], dtype=np.int64)
    p_in = np.array([p.entry_price for p in positions], dtype=np.float64)
    side = np.array([p.side for p in positions])
    x_in, on = _event_x(bars, t_in)
    x0 = x_in - 0.5 * bars.width_ms / style.DAY_MS
    x_end = np.full_like(x_in, style.to_datenum(bars.end[-1]))
    used: list[str] = []
    for key, price, color in (("sl", [p.stop_loss for p in positions], style.SL_LEVEL),
                              ("tp", [p.take_profit for p in positions], style.TP_LEVEL)):
        used += style.draw_levels(ax, np.asarray(price, dtype=np.float64), x0, x_end, color, key)
    for key, kind in style.ENTRY_KINDS.items():
        m = on & (side == key)
        if m.any():
            style.scatter_markers(ax, x_in[m], p_in[m], kind, marker_size * 1.3, hollow=True)
            used.append(f"open_{key}")
    return used


def render_price_chart(candles: OHLCV, trades: list[Trade], path: Path, *, title: str,
                       timeframe: str, open_positions: list[Position] | None = None,
                       max_bars: int = 600, quote: str | None = None) -> Path:
    """Candlestick chart of ``candles`` with ``trades`` (and open positions) marked; PNG.

    Args:
        candles: the span to draw (open times ms UTC, prices quote), ``timeframe`` candles.
        trades: closed trades; those outside the span are left out, partly inside are clipped.
        path: PNG file to write (parents created); 1400×700 px.
        title: chart title.
        timeframe: candle length, e.g. ``"1h"``.
        open_positions: drawn as hollow entry markers with SL/TP up to the last bar.
        max_bars: more candles than this are aggregated into at most this many bars.
        quote: quote currency for the price axis; default taken from the trades' symbol.

    Returns:
        ``path``.
    """
    interval = timeframe_ms(timeframe)
    bars = aggregate_bars(candles, max_bars, interval)
    positions = list(open_positions or [])
    if len(bars):
        lo, hi = int(bars.start[0]), int(bars.end[-1])
        trades = [t for t in trades if t.exit_time >= lo and t.entry_time <= hi]
        positions = [p for p in positions if p.entry_time <= hi]
    if quote is None:
        symbols = [t.symbol for t in trades] + [p.symbol for p in positions]
        quote = quote_currency(symbols[0]) if symbols else ""
    fig = style.new_figure(14, 7, 100)
    try:
        ax = fig.add_subplot()
        style.style_axes(ax)
        used: list[str] = []
        if len(bars) == 0:
            ax.text(0.5, 0.5, "no candles in this span", transform=ax.transAxes, ha="center",
                    va="center", fontsize=12, color=style.MUTED)
        else:
            draw_candles(ax, bars)
            size = style.marker_size_for(len(trades))
            used += draw_trades(ax, bars, trades, marker_size=size)
            if positions:
                used += _draw_open_positions(ax, bars, positions, max(size, 30.0))
            ax.set_xlim(style.to_datenum(bars.start[0]), style.to_datenum(bars.end[-1]))
            ax.set_ylim(*_price_limits(bars, trades, positions))
            style.setup_time_axis(ax)
        ax.set_title(style.plain(title), loc="left", fontsize=13, fontweight="bold")
        ax.set_title(style.plain(_subtitle(candles, bars, timeframe, len(trades), positions)),
                     loc="right", fontsize=9, color=style.MUTED)
        ax.set_ylabel(f"price ({style.plain(quote) or 'quote'})", fontsize=9)
        ax.set_xlabel("time (UTC)", fontsize=9)
        handles = style.legend_handles(used)
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0),
                      fontsize=8, frameon=False, borderaxespad=0.0)
        return style.save_png(fig, path, 100)
    finally:
        style.close_figure(fig)


def _price_limits(bars: Bars, trades: Sequence[Trade],
                  positions: Sequence[Position]) -> tuple[float, float]:
    values = [float(np.min(bars.low)), float(np.max(bars.high))]
    for item in (*trades, *positions):
        values += [item.entry_price, item.stop_loss, item.take_profit]
    values += [t.exit_price for t in trades]
    finite = [v for v in values if math.isfinite(v)]
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.04 or abs(hi) * 0.01 or 1.0
    return lo - pad, hi + pad


def _subtitle(candles: OHLCV, bars: Bars, timeframe: str, n_trades: int,
              positions: Sequence[Position]) -> str:
    if len(bars) == 0:
        return f"{timeframe} candles · {n_trades} trades"
    span = f"{style.format_time(int(bars.start[0]))} → {style.format_time(int(bars.end[-1]))}"
    shown = (f"{len(candles):,} × {timeframe} candles as {len(bars):,} "
             f"{style.format_duration(bars.width_ms)} bars" if bars.aggregated
             else f"{len(candles):,} × {timeframe} candles")
    extra = f" · {len(positions)} open" if positions else ""
    return f"{shown} · {n_trades:,} trades{extra} · {span} UTC"
