"""Shared chart plumbing: figures in a theme, axes styling, the UTC time axis, number labels.

Every chart is drawn on its own ``matplotlib.figure.Figure`` attached to a ``FigureCanvasAgg``:
no pyplot, no global figure registry and no rcParams changes, so charts can be rendered from
worker threads at the same time. Figures are ``theme.PHONE_WIDTH_IN`` wide (see
``engine.charts.theme``) and laid out with fixed margins (no ``tight_layout``: alert charts
must render in well under 100 ms). Times are int ms UTC; prices are in quote currency.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.ticker import Formatter, MaxNLocator

from engine.charts.theme import DPI, PHONE_WIDTH_IN, SMALL_PT, TITLE_PT, Theme

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS

#: Fixed margins (fractions of the figure): room for the y tick labels and the title lines.
LEFT, RIGHT = 0.15, 0.975


def new_figure(theme: Theme, height_in: float) -> Figure:
    """A figure ``PHONE_WIDTH_IN`` × ``height_in`` inches in ``theme`` with its own Agg canvas."""
    fig = Figure(figsize=(PHONE_WIDTH_IN, height_in), dpi=DPI, facecolor=theme.background)
    FigureCanvasAgg(fig)
    return fig


def frame(fig: Figure, top_in: float = 0.5, bottom_in: float = 0.32, hspace: float = 0.08,
          **gridspec: object) -> dict[str, float]:
    """Subplot parameters leaving ``top_in``/``bottom_in`` inches for titles and time labels."""
    height = fig.get_figheight()
    return {"left": LEFT, "right": RIGHT, "top": 1 - top_in / height,
            "bottom": bottom_in / height, "hspace": hspace, **gridspec}


def save_png(fig: Figure, path: Path | str) -> Path:
    """Write ``fig`` to ``path`` as PNG (parents created) and return the path.

    The pixel size is exactly ``figsize × DPI``; the PNG carries no version metadata, so the
    same input gives the same bytes.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # light compression: alerts wait for these files; a few more kB cost nothing to upload
    fig.savefig(out, format="png", dpi=DPI, facecolor=fig.get_facecolor(),
                metadata={"Software": None}, pil_kwargs={"compress_level": 2})
    return out


def close_figure(fig: Figure) -> None:
    """Let ``fig`` go: no pyplot registry holds it, so dropping the canvas is enough (its
    artists are garbage-collected; ``fig.clear()`` would rebuild every axes first, ~5 ms)."""
    fig.canvas = None  # type: ignore[assignment]


def write_png(fig: Figure, path: Path | str) -> Path:
    """``save_png`` then ``close_figure`` (also when saving fails); returns the path."""
    try:
        return save_png(fig, path)
    finally:
        close_figure(fig)


def titles(fig: Figure, theme: Theme, title: str, subtitle: str = "",
           colour: str | None = None) -> None:
    """The title line (bold) and a muted subtitle line under it, at the figure's top left."""
    height = fig.get_figheight()
    fig.text(0.02, 1 - 0.06 / height, plain(title), ha="left", va="top", fontsize=TITLE_PT,
             fontweight="bold", color=colour or theme.text)
    if subtitle:
        fig.text(0.02, 1 - 0.26 / height, plain(subtitle), ha="left", va="top",
                 fontsize=SMALL_PT, color=theme.muted)


def style_axes(ax: Axes, theme: Theme) -> None:
    """Theme background, a faint grid behind the data, no top/right spines, phone-size ticks."""
    ax.set_facecolor(theme.background)
    ax.set_axisbelow(True)
    ax.grid(True, color=theme.grid, linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(theme.grid)
    ax.tick_params(labelsize=SMALL_PT, colors=theme.muted, length=2.5, width=0.6, pad=2)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.yaxis.set_major_formatter(CompactFormatter())


def no_data(ax: Axes, theme: Theme, text: str, fontsize: float = TITLE_PT) -> None:
    """``text`` (e.g. ``"no candles in this span"``) muted in the middle of an empty ``ax``."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            fontsize=fontsize, color=theme.muted)


def label_panel(ax: Axes, theme: Theme, text: str) -> None:
    """A small muted label in the top-left corner inside a panel (no y label eating width)."""
    ax.text(0.01, 0.97, plain(text), transform=ax.transAxes, ha="left", va="top",
            fontsize=SMALL_PT, color=theme.muted, zorder=10)


def legend(ax: Axes, theme: Theme, handles: list, loc: str = "upper left",
           ncol: int = 2) -> Legend | None:
    """A compact legend inside ``ax`` on a translucent theme background (None: no handles)."""
    if not handles:
        return None
    found = ax.legend(handles=handles, loc=loc, ncol=ncol, fontsize=SMALL_PT, frameon=True,
                      framealpha=0.75, facecolor=theme.background, edgecolor=theme.grid,
                      labelcolor=theme.text, handlelength=1.2, handletextpad=0.4,
                      columnspacing=0.8, borderpad=0.3, labelspacing=0.25)
    found.set_zorder(20)
    return found


def setup_time_axis(ax: Axes, theme: Theme, max_ticks: int = 5) -> None:
    """Concise UTC date ticks on the x axis of ``ax`` (x data in matplotlib date numbers)."""
    locator = mdates.AutoDateLocator(tz=dt.UTC, minticks=3, maxticks=max_ticks)
    # more steps than matplotlib's defaults, so every span finds 3 to ~6 ticks
    locator.intervald[mdates.YEARLY] = [1, 2, 5, 10, 20, 50, 100]
    locator.intervald[mdates.MONTHLY] = [1, 2, 3, 4, 6, 12]
    locator.intervald[mdates.DAILY] = [1, 2, 3, 5, 7, 10, 14, 15]
    locator.intervald[mdates.HOURLY] = [1, 2, 3, 4, 6, 8, 12, 24]
    locator.intervald[mdates.MINUTELY] = [1, 2, 5, 10, 15, 20, 30, 60]
    formatter = mdates.ConciseDateFormatter(locator, tz=dt.UTC, show_offset=False)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(formatter)


def to_datenum(ts_ms: np.ndarray | float) -> np.ndarray:
    """Matplotlib date numbers (days since matplotlib's epoch) of times in ms UTC."""
    offset = mdates.date2num(dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    return np.asarray(ts_ms, dtype=np.float64) / DAY_MS + offset


def segments(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """Line segments ``(x0, y0)→(x1, y1)`` as an ``(n, 2, 2)`` array for ``LineCollection``."""
    return np.stack((np.column_stack((x0, y0)), np.column_stack((x1, y1))), axis=1)


class CompactFormatter(Formatter):
    """Tick labels through ``compact_number``, with the tick spacing of this draw."""

    step = 0.0

    def set_locs(self, locs: list[float]) -> None:
        """Remember the tick spacing of this draw (called before the labels are made)."""
        values = np.asarray(locs, dtype=np.float64)
        self.step = float(np.min(np.diff(values))) if values.size > 1 else 0.0

    def __call__(self, x: float, pos: int | None = None) -> str:
        return compact_number(x, self.step or abs(x) or 1.0)


def compact_number(value: float, step: float) -> str:
    """``value`` short enough for a phone axis, precise enough to tell ticks ``step`` apart:
    ``compact_number(104500, 500)`` → ``"104.5k"``, ``compact_number(0.01234, 0.001)`` →
    ``"0.012"``."""
    size = abs(value)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= 10 * scale and step >= scale / 100:
            return f"{value / scale:,.{_decimals(step / scale)}f}{suffix}"
    return f"{value:,.{_decimals(step)}f}"


def _decimals(step: float) -> int:
    if step <= 0 or not math.isfinite(step):
        return 2
    return int(min(8, max(0, -math.floor(math.log10(step) + 1e-9))))


def plain(text: str) -> str:
    """``text`` safe for matplotlib: ``$`` is shown literally instead of starting mathtext."""
    return text.replace("$", r"\$")


def infer_interval_ms(timestamp: np.ndarray) -> int:
    """Candle length (ms) guessed from open times: the smallest step; 1 minute if unknown."""
    if len(timestamp) < 2:
        return MINUTE_MS
    steps = np.diff(np.asarray(timestamp, dtype=np.int64))
    steps = steps[steps > 0]
    return int(steps.min()) if steps.size else MINUTE_MS


def format_duration(ms: int) -> str:
    """A compact duration: ``"1d"``, ``"4h"``, ``"2w"``, ``"3d 4h"``, ``"15m"``, ``"45s"``."""
    ms = int(ms)
    if ms <= 0:
        return "0m"
    if ms % WEEK_MS == 0:
        return f"{ms // WEEK_MS}w"
    parts = []
    for unit_ms, unit in ((DAY_MS, "d"), (HOUR_MS, "h"), (MINUTE_MS, "m")):
        if ms >= unit_ms:
            parts.append(f"{ms // unit_ms}{unit}")
            ms %= unit_ms
        if len(parts) == 2:
            break
    return " ".join(parts) if parts else f"{ms // 1000}s"


def format_price(price: float) -> str:
    """A price with thousands separators and enough decimals for its magnitude."""
    size = abs(price)
    decimals = 2 if size >= 100 else 4 if size >= 1 else 6
    return f"{price:,.{decimals}f}"


