"""Research PNGs: the optimisation heatmap, the Monte Carlo fan, the walk-forward equity.

Drawn like every other chart (``engine.charts``): phone width, the chosen theme (``dark`` by
default, ``PAPERBOT_CHART_THEME``), fixed margins, no pyplot state. Money in quote currency,
times ms UTC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.lines import Line2D

from engine.charts import style
from engine.charts.theme import SMALL_PT, Theme, get_theme

HEIGHT_IN = 3.6
#: a numeric axis with more distinct values than this is binned
MAX_CELLS = 12


def _axis(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Cell index of each value and the cell labels (distinct values, or bins)."""
    distinct = np.unique(values)
    if distinct.size <= MAX_CELLS:
        index = np.searchsorted(distinct, values)
        return index, [f"{v:g}" for v in distinct]
    edges = np.linspace(distinct[0], distinct[-1], MAX_CELLS + 1)
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, MAX_CELLS - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    return index, [f"{v:.3g}" for v in centres]


def render_heatmap(points: list[tuple[float, float, float]], x_name: str, y_name: str,
                   objective: str, path: Path, title: str = "",
                   theme: str | Theme | None = None) -> Path:
    """Best objective value per (x, y) cell over the completed trials; empty cells blank.

    ``points`` are ``(x, y, objective value)`` per completed trial.
    """
    th = get_theme(theme)
    arr = np.asarray(points, dtype=np.float64)
    xi, x_labels = _axis(arr[:, 0])
    yi, y_labels = _axis(arr[:, 1])
    grid = np.full((len(y_labels), len(x_labels)), np.nan)
    for x, y, value in zip(xi, yi, arr[:, 2], strict=True):
        if np.isnan(grid[y, x]) or value > grid[y, x]:
            grid[y, x] = value
    fig = style.new_figure(th, HEIGHT_IN)
    fig.subplots_adjust(**style.frame(fig, top_in=0.55, bottom_in=0.55, right=0.86))
    ax = fig.add_subplot(1, 1, 1)
    cmap = LinearSegmentedColormap.from_list("objective", list(th.heat))
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap)
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    bar.ax.tick_params(labelsize=SMALL_PT, colors=th.muted)
    bar.outline.set_edgecolor(th.grid)
    style.style_axes(ax, th)
    ax.grid(False)
    ax.set_xticks(range(len(x_labels)), x_labels, rotation=45)
    ax.set_yticks(range(len(y_labels)), y_labels)
    ax.set_xlabel(x_name, fontsize=SMALL_PT, color=th.muted, labelpad=1)
    ax.set_ylabel(y_name, fontsize=SMALL_PT, color=th.muted, labelpad=1)
    if grid.size <= 64:
        for (y, x), value in np.ndenumerate(grid):
            if not np.isnan(value):
                ax.text(x, y, f"{value:.2g}", ha="center", va="center", fontsize=SMALL_PT,
                        color=th.text)
    style.titles(fig, th, title or "Optimisation",
                 f"best {objective} per cell · {len(points):,} trials")
    return style.write_png(fig, path)


def render_fan(paths: dict[str, np.ndarray], balance: float, path: Path,
               title: str = "", theme: str | Theme | None = None,
               subtitle: str = "equity after each trade") -> Path:
    """Monte Carlo fan: 5–95 % and 25–75 % bands and the median of equity after each trade.

    ``paths`` maps a method name ("shuffle", "bootstrap") to equity paths, shape
    ``(runs, trades + 1)`` (quote currency, starting at ``balance``).
    """
    th = get_theme(theme)
    fig = style.new_figure(th, HEIGHT_IN)
    fig.subplots_adjust(**style.frame(fig, top_in=0.55, bottom_in=0.4))
    ax = fig.add_subplot(1, 1, 1)
    colours = {"shuffle": th.equity, "bootstrap": th.palette[0]}
    handles = []
    for k, (name, equity) in enumerate(paths.items()):
        colour = colours.get(name, th.palette[(k + 1) % len(th.palette)])
        x = np.arange(equity.shape[1])
        p5, p25, p50, p75, p95 = np.percentile(equity, [5, 25, 50, 75, 95], axis=0)
        ax.fill_between(x, p5, p95, color=colour, alpha=0.15, linewidth=0)
        ax.fill_between(x, p25, p75, color=colour, alpha=0.3, linewidth=0)
        ax.plot(x, p50, color=colour, linewidth=1.3)
        handles.append(Line2D([], [], color=colour, linewidth=1.3, label=f"{name} median"))
    ax.axhline(balance, color=th.muted, linewidth=0.8, linestyle="--")
    style.style_axes(ax, th)
    style.label_panel(ax, th, "equity · bands 25–75 % and 5–95 %")
    ax.set_xlabel("trade", fontsize=SMALL_PT, color=th.muted, labelpad=1)
    style.legend(ax, th, handles, loc="lower left")
    style.titles(fig, th, title or "Monte Carlo", subtitle)
    return style.write_png(fig, path)


def render_walkforward(times: np.ndarray, equity: np.ndarray, fold_starts: list[int],
                       balance: float, path: Path, title: str = "",
                       theme: str | Theme | None = None) -> Path:
    """The stitched out-of-sample equity curve with each test window's start marked.

    ``times`` ms UTC and ``equity`` quote currency, one value per candle; ``fold_starts`` ms UTC.
    """
    th = get_theme(theme)
    fig = style.new_figure(th, HEIGHT_IN)
    fig.subplots_adjust(**style.frame(fig, top_in=0.55))
    ax = fig.add_subplot(1, 1, 1)
    x = style.to_datenum(times)
    for k, start in enumerate(fold_starts):
        ax.axvline(float(style.to_datenum(start)), color=th.muted if k == 0 else th.grid,
                   linewidth=0.8, linestyle=":")
    ax.axhline(balance, color=th.muted, linewidth=0.8, linestyle="--")
    ax.plot(x, equity, color=th.equity, linewidth=1.2)
    style.style_axes(ax, th)
    style.setup_time_axis(ax, th)
    style.label_panel(ax, th, f"out-of-sample equity · {len(fold_starts)} test windows")
    style.titles(fig, th, title or "Walk-forward", "test windows chained, dotted lines: starts")
    return style.write_png(fig, path)
