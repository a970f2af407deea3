"""Research PNGs: the optimisation heatmap, the Monte Carlo fan, the walk-forward equity.

Same look as ``engine.charts`` (white, light grid, 1200 × 675 px at 100 dpi, no pyplot state).
Money in quote currency, times ms UTC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.charts import style

WIDTH, HEIGHT, DPI = 12.0, 6.75, 100
#: a numeric axis with more distinct values than this is binned
MAX_CELLS = 16


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
                   objective: str, path: Path, title: str = "") -> Path:
    """Best objective value per (x, y) cell over the completed trials; empty cells blank."""
    arr = np.asarray(points, dtype=np.float64)
    xi, x_labels = _axis(arr[:, 0])
    yi, y_labels = _axis(arr[:, 1])
    grid = np.full((len(y_labels), len(x_labels)), np.nan)
    for x, y, value in zip(xi, yi, arr[:, 2], strict=True):
        if np.isnan(grid[y, x]) or value > grid[y, x]:
            grid[y, x] = value
    fig = style.new_figure(WIDTH, HEIGHT, DPI)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap="RdYlGn")
    fig.colorbar(image, ax=ax, label=f"best {objective}")
    ax.set_xticks(range(len(x_labels)), x_labels, fontsize=8, rotation=45)
    ax.set_yticks(range(len(y_labels)), y_labels, fontsize=8)
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    if grid.size <= 256:
        for (y, x), value in np.ndenumerate(grid):
            if not np.isnan(value):
                ax.text(x, y, f"{value:.2g}", ha="center", va="center", fontsize=7)
    ax.set_title(f"{title} · best {objective} per cell ({len(points)} trials)", fontsize=10)
    out = style.save_png(fig, path, DPI)
    style.close_figure(fig)
    return out


def render_fan(paths: dict[str, np.ndarray], balance: float, path: Path,
               title: str = "") -> Path:
    """Monte Carlo fan: 5–95 % and 25–75 % bands and the median of equity after each trade.

    ``paths`` maps a method name ("shuffle", "bootstrap") to equity paths, shape
    ``(runs, trades + 1)`` (quote currency, starting at ``balance``).
    """
    fig = style.new_figure(WIDTH, HEIGHT, DPI)
    ax = fig.add_subplot(1, 1, 1)
    colours = {"shuffle": style.EQUITY, "bootstrap": style.TP_LEVEL}
    for name, equity in paths.items():
        colour = colours.get(name, style.OTHER)
        x = np.arange(equity.shape[1])
        p5, p25, p50, p75, p95 = np.percentile(equity, [5, 25, 50, 75, 95], axis=0)
        ax.fill_between(x, p5, p95, color=colour, alpha=0.12, linewidth=0)
        ax.fill_between(x, p25, p75, color=colour, alpha=0.25, linewidth=0)
        ax.plot(x, p50, color=colour, linewidth=1.4, label=f"{name}: median, 25–75 %, 5–95 %")
    ax.axhline(balance, color=style.MUTED, linewidth=0.8, linestyle="--")
    style.style_axes(ax)
    ax.set_xlabel("trade")
    ax.set_ylabel("equity")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=10)
    out = style.save_png(fig, path, DPI)
    style.close_figure(fig)
    return out


def render_walkforward(times: np.ndarray, equity: np.ndarray, fold_starts: list[int],
                       balance: float, path: Path, title: str = "") -> Path:
    """The stitched out-of-sample equity curve with each test window's start marked."""
    fig = style.new_figure(WIDTH, HEIGHT, DPI)
    ax = fig.add_subplot(1, 1, 1)
    x = style.to_datenum(times)
    ax.plot(x, equity, color=style.EQUITY, linewidth=1.2, label="out-of-sample equity")
    for k, start in enumerate(fold_starts):
        ax.axvline(float(style.to_datenum(start)), color=style.GRID if k else style.MUTED,
                   linewidth=0.8, linestyle=":")
    ax.axhline(balance, color=style.MUTED, linewidth=0.8, linestyle="--")
    style.style_axes(ax)
    style.setup_time_axis(ax)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=10)
    out = style.save_png(fig, path, DPI)
    style.close_figure(fig)
    return out
