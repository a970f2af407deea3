"""Candles as drawn: aggregation into at most ``max_bars`` bars, bar lookup, candlesticks.

Large spans are aggregated into bars of a "nice" width (``4h``, ``1d``, ``1w``…, aligned to the
UTC time grid), so a year of minute candles draws as fast as a week of hourly ones and every
bar stays a few pixels wide on a phone. Drawing is vectorised: one ``LineCollection`` for the
wicks, one ``PolyCollection`` for the bodies. Times are int ms UTC; prices quote currency;
volume base units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgba

from data.ohlcv import OHLCV
from engine.charts import style
from engine.charts.theme import Theme

_NICE_MINUTES = (1, 2, 3, 5, 10, 15, 30, 60, 120, 180, 240, 360, 480, 720,
                 1440, 2880, 4320, 10080, 20160, 40320)
_NICE_WIDTHS_MS = tuple(m * style.MINUTE_MS for m in _NICE_MINUTES)
_WEEK_ORIGIN_MS = 4 * style.DAY_MS  # Monday 1970-01-05 00:00 UTC


@dataclass(frozen=True, slots=True)
class Bars:
    """Candles as drawn: bar ``i`` covers ``[start[i], end[i])`` (ms UTC), OHLC in quote,
    ``volume`` summed (base units), ``last[i]`` the index of its last source candle.

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
    volume: np.ndarray | None = None
    last: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.start.shape[0])

    @property
    def aggregated(self) -> bool:
        """True when each bar may hold more than one source candle."""
        return self.width_ms != self.source_ms

    def sample(self, values: np.ndarray) -> np.ndarray:
        """A per-candle series (e.g. an indicator) at each bar's last candle, shape ``(bars,)``."""
        values = np.asarray(values, dtype=np.float64)
        if self.last is None:
            return values[: len(self)]
        return values[self.last]


def aggregate_bars(candles: OHLCV, max_bars: int, interval_ms: int) -> Bars:
    """Group ``candles`` (each ``interval_ms`` long) into at most ``max_bars`` bars.

    With ``len(candles) <= max_bars`` every candle is its own bar. Otherwise the bar width is
    the smallest nice multiple of ``interval_ms`` (``2h, 4h, 1d, 1w``…, else a plain multiple)
    giving ``<= max_bars`` bars on the UTC grid (weeks start Monday); each bar holds the first
    open, highest high, lowest low, last close and summed volume of its candles.

    Raises:
        ValueError: when ``max_bars < 1`` or ``interval_ms < 1``.
    """
    if max_bars < 1 or interval_ms < 1:
        raise ValueError(f"need max_bars >= 1 and interval_ms >= 1, got {max_bars}, {interval_ms}")
    ts = np.asarray(candles.timestamp, dtype=np.int64)
    n = ts.shape[0]
    if n <= max_bars:
        return Bars(ts, ts + interval_ms, candles.open, candles.high, candles.low, candles.close,
                    interval_ms, interval_ms, candles.volume, np.arange(n))
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
                candles.close[last], int(width), interval_ms,
                np.add.reduceat(candles.volume, first), last)


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


def event_x(bars: Bars, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (date numbers) of events at ``times`` (ms UTC) and whether they fall on a bar."""
    idx = locate_bars(bars, times)
    on_bar = idx >= 0
    x = style.to_datenum(times)
    if len(bars):
        x[on_bar] = bar_centers(bars)[idx[on_bar]]
    return x, on_bar


def draw_candles(ax: Axes, bars: Bars, theme: Theme) -> None:
    """Draw ``bars`` as candlesticks on ``ax`` (x in date numbers) with two collections."""
    if len(bars) == 0:
        return
    x = bar_centers(bars)
    half = 0.36 * bars.width_ms / style.DAY_MS
    up = bars.close >= bars.open
    colors = np.where(up[:, None], to_rgba(theme.up), to_rgba(theme.down))
    ax.add_collection(LineCollection(style.segments(x, bars.low, x, bars.high), colors=colors,
                                     linewidths=0.6, zorder=2))
    lo = np.minimum(bars.open, bars.close)
    hi = np.maximum(bars.open, bars.close)
    min_height = (np.max(bars.high) - np.min(bars.low)) * 0.003
    hi = np.maximum(hi, lo + min_height)  # keep doji bodies visible
    verts = np.stack((np.column_stack((x - half, lo)), np.column_stack((x - half, hi)),
                      np.column_stack((x + half, hi)), np.column_stack((x + half, lo))), axis=1)
    ax.add_collection(PolyCollection(verts, facecolors=colors, edgecolors=colors,
                                     linewidths=0.3, zorder=3))


def draw_volume(ax: Axes, bars: Bars, theme: Theme) -> None:
    """Volume bars (summed per bar) coloured like their candle, on ``ax``."""
    if len(bars) == 0 or bars.volume is None:
        return
    x = bar_centers(bars)
    half = 0.36 * bars.width_ms / style.DAY_MS
    up = bars.close >= bars.open
    colors = np.where(up[:, None], to_rgba(theme.up, theme.volume_alpha),
                      to_rgba(theme.down, theme.volume_alpha))
    vol = np.nan_to_num(np.asarray(bars.volume, dtype=np.float64))
    zero = np.zeros_like(vol)
    verts = np.stack((np.column_stack((x - half, zero)), np.column_stack((x - half, vol)),
                      np.column_stack((x + half, vol)), np.column_stack((x + half, zero))),
                     axis=1)
    ax.add_collection(PolyCollection(verts, facecolors=colors, linewidths=0, zorder=2))
    top = float(vol.max()) if vol.size else 1.0
    ax.set_ylim(0, top * 1.15 or 1.0)
