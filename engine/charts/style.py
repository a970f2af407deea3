"""Shared chart plumbing: colours, marker table, figure creation/saving and the UTC time axis.

Every chart is drawn on its own ``matplotlib.figure.Figure`` attached to a ``FigureCanvasAgg``:
no pyplot, no global figure registry and no rcParams changes, so charts can be rendered from
worker threads at the same time. Times are int ms UTC; prices are in quote currency.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS

# Candles (TradingView-like, slightly muted so trade markers stand out).
UP = "#26a69a"
DOWN = "#ef5350"
# Trades.
WIN = "#1b8a3a"
LOSS = "#c62828"
LONG = "#00a152"
SHORT = "#e01b1b"
SIGNAL = "#3d5afe"
OTHER = "#8a8a8a"
ENTRY_LEVEL = "#1e64c8"
SL_LEVEL = "#e53935"
TP_LEVEL = "#2e9e44"
EQUITY = "#1e64c8"
BENCHMARK = "#9e9e9e"
GRID = "#e8e8e8"
MUTED = "#555555"


@dataclass(frozen=True, slots=True)
class MarkerKind:
    """How one kind of trade event is drawn: legend label, matplotlib marker, fill colour."""

    label: str
    marker: str
    color: str


ENTRY_KINDS: dict[str, MarkerKind] = {
    "long": MarkerKind("long entry", "^", LONG),
    "short": MarkerKind("short entry", "v", SHORT),
}
EXIT_KINDS: dict[str, MarkerKind] = {
    "stop_loss": MarkerKind("stop-loss exit", "X", SHORT),
    "take_profit": MarkerKind("take-profit exit", "o", LONG),
    "signal": MarkerKind("signal exit", "D", SIGNAL),
    "end_of_data": MarkerKind("end-of-data / manual exit", "s", OTHER),
    "manual": MarkerKind("end-of-data / manual exit", "s", OTHER),
}


def new_figure(width_in: float, height_in: float, dpi: int) -> Figure:
    """A white figure of fixed size (inches) with its own Agg canvas (no pyplot state)."""
    fig = Figure(figsize=(width_in, height_in), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path | str, dpi: int) -> Path:
    """Lay out ``fig`` tightly, write it to ``path`` as PNG (parents created) and return the path.

    The pixel size is exactly ``figsize × dpi`` (no ``bbox_inches="tight"``); the PNG carries no
    version metadata so the same input gives the same bytes.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(pad=0.6)
    fig.savefig(out, format="png", dpi=dpi, facecolor="white", metadata={"Software": None})
    return out


def close_figure(fig: Figure) -> None:
    """Release every artist of ``fig`` (the pyplot-free equivalent of ``plt.close``)."""
    fig.clear()


def to_datenum(ts_ms: np.ndarray | float) -> np.ndarray:
    """Matplotlib date numbers (days since matplotlib's epoch) of times in ms UTC."""
    offset = mdates.date2num(dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    return np.asarray(ts_ms, dtype=np.float64) / DAY_MS + offset


def setup_time_axis(ax: Axes) -> None:
    """Concise UTC date ticks on the x axis of ``ax`` (x data in matplotlib date numbers)."""
    locator = mdates.AutoDateLocator(tz=dt.UTC, minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=dt.UTC))
    ax.xaxis.get_offset_text().set_fontsize(8)


def style_axes(ax: Axes) -> None:
    """Light grid behind the data, no top/right spines, small tick labels."""
    ax.set_axisbelow(True)
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.tick_params(labelsize=8)


def marker_handle(kind: MarkerKind, *, hollow: bool = False, label: str | None = None) -> Line2D:
    """A legend entry showing the marker of ``kind``."""
    return Line2D([], [], linestyle="None", marker=kind.marker, markersize=7,
                  markerfacecolor="white" if hollow else kind.color,
                  markeredgecolor=kind.color if hollow else "black",
                  markeredgewidth=1.4 if hollow else 0.6, label=label or kind.label)


def line_handle(color: str, label: str, *, linestyle: str = "-", linewidth: float = 1.2) -> Line2D:
    """A legend entry showing a line."""
    return Line2D([], [], color=color, linestyle=linestyle, linewidth=linewidth, label=label)


def segments(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """Line segments ``(x0, y0)→(x1, y1)`` as an ``(n, 2, 2)`` array for ``LineCollection``."""
    return np.stack((np.column_stack((x0, y0)), np.column_stack((x1, y1))), axis=1)


def draw_levels(ax: Axes, price: np.ndarray, x0: np.ndarray, x1: np.ndarray, color: str,
                key: str) -> list[str]:
    """Dashed horizontal segments at ``price`` (quote) from ``x0`` to ``x1``; NaN skipped."""
    m = np.isfinite(price)
    if not m.any():
        return []
    ax.add_collection(LineCollection(segments(x0[m], price[m], x1[m], price[m]), colors=color,
                                     linewidths=1.0, linestyles="--", zorder=4), autolim=False)
    return [key]


def scatter_markers(ax: Axes, x: np.ndarray, y: np.ndarray, kind: MarkerKind, size: float,
                    *, hollow: bool = False) -> None:
    """Markers of ``kind`` (area ``size`` pt²) at ``x`` (date numbers), ``y`` (quote)."""
    ax.scatter(x, y, s=size, marker=kind.marker, zorder=6,
               c="white" if hollow else kind.color,
               edgecolors=kind.color if hollow else "black",
               linewidths=1.4 if hollow else 0.6)


def marker_size_for(n_trades: int) -> float:
    """Marker area (pt²): 46 up to 150 trades, then shrinking so crowds stay legible (≥ 10)."""
    return 46.0 if n_trades <= 150 else max(10.0, 46.0 * math.sqrt(150 / n_trades))


def legend_handles(used: Sequence[str]) -> list[Line2D]:
    """Legend entries for the keys from ``price.draw_trades`` (deduplicated, fixed order)."""
    table = {
        **{k: marker_handle(v) for k, v in ENTRY_KINDS.items()},
        **{f"open_{k}": marker_handle(v, hollow=True, label=f"open {k} position")
           for k, v in ENTRY_KINDS.items()},
        **{k: marker_handle(v) for k, v in EXIT_KINDS.items()},
        "win": line_handle(WIN, "winning trade (entry→exit)"),
        "loss": line_handle(LOSS, "losing trade (entry→exit)"),
        "sl": line_handle(SL_LEVEL, "stop-loss level", linestyle="--"),
        "tp": line_handle(TP_LEVEL, "take-profit level", linestyle="--"),
    }
    order = ["long", "short", "open_long", "open_short", "take_profit", "stop_loss", "signal",
             "end_of_data", "manual", "win", "loss", "tp", "sl"]
    handles: list[Line2D] = []
    labels: set[str] = set()
    for key in order:
        if key in used and table[key].get_label() not in labels:
            handles.append(table[key])
            labels.add(table[key].get_label())
    return handles


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


def format_time(ts_ms: int) -> str:
    """``"2024-03-01 14:00"`` (UTC) for a time in ms UTC."""
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


def format_price(price: float) -> str:
    """A price with thousands separators and enough decimals for its magnitude."""
    size = abs(price)
    decimals = 2 if size >= 100 else 4 if size >= 1 else 6
    return f"{price:,.{decimals}f}"
