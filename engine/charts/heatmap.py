"""Monthly-returns heatmap: one row per year, one cell per month, the year's total on the left.

Cells are coloured from the theme's loss colour (worst month) through neutral (0 %) to its win
colour (best month), on a scale symmetric around zero; each cell shows its return in percent
(whole percents from 10 % up, one decimal below). Months without candles stay blank. Returns in
percent of the equity at the month's start (``engine.stats.returns.monthly_returns``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm, to_rgb
from matplotlib.figure import Figure

from engine.charts import style
from engine.charts.theme import SMALL_PT, Theme, get_theme
from engine.stats.returns import MonthReturn

MONTHS = "JFMAMJJASOND"


def cell_text(value: float) -> str:
    """``12.34`` → ``"+12"``, ``-3.21`` → ``"-3.2"``, ``0.04`` → ``"0.0"``."""
    if abs(value) >= 9.95:
        return f"{value:+.0f}"
    text = f"{value:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def build_heatmap_figure(months: Sequence[MonthReturn], *, title: str,
                         theme: str | Theme | None = None) -> Figure:
    """The heatmap as a ``Figure`` (``render_monthly_heatmap`` writes it)."""
    th = get_theme(theme)
    years = sorted({m.year for m in months})
    grid = np.full((max(len(years), 1), 12), np.nan)
    for m in months:
        grid[years.index(m.year), m.month - 1] = m.return_pct
    fig = style.new_figure(th, 0.62 + 0.34 + 0.3 * max(len(years), 1))
    ax = fig.subplots(1, 1, gridspec_kw=style.frame(fig, top_in=0.62, bottom_in=0.34,
                                                     left=0.2))
    ax.set_facecolor(th.background)
    for side in ax.spines.values():
        side.set_visible(False)
    style.titles(fig, th, title, "monthly returns, % (UTC months)")
    finite = grid[np.isfinite(grid)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    cmap = LinearSegmentedColormap.from_list("pb", [to_rgb(c) for c in th.heat])
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto",
              norm=TwoSlopeNorm(0.0, -bound or -1.0, bound or 1.0), interpolation="nearest")
    for (row, col), value in np.ndenumerate(grid):
        if np.isfinite(value):
            strong = abs(value) > 0.55 * bound
            ax.text(col, row, cell_text(float(value)), ha="center", va="center",
                    fontsize=SMALL_PT, color="#ffffff" if strong or th.name == "dark"
                    else th.text)
    ax.set_xticks(range(12), list(MONTHS))
    totals = [_compound(grid[i]) for i in range(len(years))]
    ax.set_yticks(range(len(years)), [f"{y} {t:+.0f}%" for y, t in zip(years, totals,
                                                                      strict=True)])
    ax.tick_params(labelsize=SMALL_PT, colors=th.muted, length=0, pad=3)
    ax.set_xticks(np.arange(-0.5, 12, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, len(years), 1), minor=True)
    ax.grid(which="minor", color=th.background, linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    return fig


def render_monthly_heatmap(months: Sequence[MonthReturn], path: Path, *, title: str,
                           theme: str | Theme | None = None) -> Path:
    """Write the monthly-returns heatmap as an 800 px wide PNG; returns ``path``."""
    fig = build_heatmap_figure(months, title=title, theme=theme)
    return style.write_png(fig, path)


def _compound(row: np.ndarray) -> float:
    """A year's return from its months' returns (percent)."""
    values = row[np.isfinite(row)]
    return float((np.prod(1 + values / 100.0) - 1) * 100.0) if values.size else 0.0
