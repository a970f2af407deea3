"""Equity chart: equity curve (with optional buy-and-hold benchmark) over an underwater panel.

Times are int ms UTC; equity, balances and the benchmark are in quote currency; drawdowns in
percent (``<= 0``). Long curves are drawn min/max-downsampled so spikes survive. Laid out for a
phone like every chart (``engine.charts.theme``): 4 × 3 inches, legend inside the plot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from engine.charts import style
from engine.charts.theme import Theme, get_theme

DEFAULT_MAX_POINTS = 800


def drawdown_pct(equity: np.ndarray) -> np.ndarray:
    """Drawdown from the running peak, in percent (``0`` at a new high, ``-25.0`` for -25 %).

    NaN equity values give NaN drawdowns and do not move the peak.
    """
    eq = np.asarray(equity, dtype=np.float64)
    if eq.size == 0:
        return eq.copy()
    peak = np.fmax.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = (eq - peak) / peak * 100.0
    return np.where(peak > 0, dd, np.where(np.isnan(eq), np.nan, 0.0))


def max_drawdown(equity: np.ndarray) -> tuple[int, float]:
    """``(index, percent)`` of the deepest drawdown trough; ``(0, 0.0)`` when there is none."""
    dd = drawdown_pct(equity)
    if dd.size == 0 or np.all(np.isnan(dd)):
        return 0, 0.0
    i = int(np.nanargmin(dd))
    return i, float(dd[i])


def minmax_indices(values: np.ndarray, max_points: int = DEFAULT_MAX_POINTS) -> np.ndarray:
    """Sorted indices of at most ``max_points`` points of ``values`` keeping its shape.

    The series is cut into equal buckets; each keeps its minimum and maximum (so spikes and
    troughs are never lost), plus the first and last point. Short series keep every index.

    Raises:
        ValueError: when ``max_points < 4``.
    """
    v = np.asarray(values, dtype=np.float64)
    n = v.shape[0]
    if n <= max_points:
        return np.arange(n)
    if max_points < 4:
        raise ValueError(f"max_points must be >= 4, got {max_points}")
    size = -(-n // ((max_points - 2) // 2))
    buckets = -(-n // size)
    padded = np.full(buckets * size, v[-1])
    padded[:n] = v
    nan = np.isnan(padded)
    offsets = np.arange(buckets) * size
    lows = np.where(nan, np.inf, padded).reshape(buckets, size).argmin(axis=1) + offsets
    highs = np.where(nan, -np.inf, padded).reshape(buckets, size).argmax(axis=1) + offsets
    idx = np.unique(np.concatenate(([0, n - 1], lows, highs)))
    return idx[idx < n]



def build_equity_figure(timestamps: np.ndarray, equity: np.ndarray, *, title: str,
                        starting_balance: float, benchmark: np.ndarray | None = None,
                        quote: str = "", theme: str | Theme | None = None) -> Figure:
    """The equity/drawdown chart as a ``Figure`` (``render_equity_chart`` writes it).

    Raises:
        ValueError: when ``timestamps``, ``equity`` and ``benchmark`` differ in shape.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    eq = np.asarray(equity, dtype=np.float64)
    if ts.shape != eq.shape:
        raise ValueError(f"timestamps {ts.shape} and equity {eq.shape} differ in shape")
    if benchmark is not None and np.shape(benchmark) != eq.shape:
        raise ValueError(f"benchmark {np.shape(benchmark)} and equity {eq.shape} differ in shape")
    th = get_theme(theme)
    fig = style.new_figure(th, 3.2)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw=style.frame(
        fig, height_ratios=[2.6, 1]))
    for ax in (top, bottom):
        style.style_axes(ax, th)
    unit = style.plain(quote)
    style.titles(fig, th, title, f"equity and drawdown ({unit})" if unit
                 else "equity and drawdown")
    if eq.size == 0:
        style.no_data(top, th, "no equity data")
        return fig
    _draw_panels(top, bottom, ts, eq, starting_balance, benchmark, th)
    return fig


def render_equity_chart(timestamps: np.ndarray, equity: np.ndarray, path: Path, *, title: str,
                        starting_balance: float, benchmark: np.ndarray | None = None,
                        quote: str = "", theme: str | Theme | None = None) -> Path:
    """Equity curve over a drawdown (underwater) panel, written as an 800 × 640 px PNG.

    Args:
        timestamps: ms UTC of each equity point (ascending).
        equity: account equity at each time, quote currency.
        path: PNG file to write (parents created).
        title: chart title.
        starting_balance: quote currency; drawn as a reference line.
        benchmark: optional buy-and-hold price series aligned with ``timestamps``; scaled so
            its first finite value equals ``starting_balance``.
        quote: quote currency name (e.g. ``"USDT"``).
        theme: ``"dark"`` (default), ``"light"`` or a ``Theme``.

    Returns:
        ``path``.

    Raises:
        ValueError: when the arrays differ in shape.
    """
    fig = build_equity_figure(timestamps, equity, title=title,
                              starting_balance=starting_balance, benchmark=benchmark,
                              quote=quote, theme=theme)
    return style.write_png(fig, path)


def _draw_panels(top: Axes, bottom: Axes, ts: np.ndarray, eq: np.ndarray,
                 starting_balance: float, benchmark: np.ndarray | None, th: Theme) -> None:
    x = style.to_datenum(ts)
    dd = drawdown_pct(eq)
    final = eq[-1]
    ret = (final / starting_balance - 1) * 100 if starting_balance else 0.0
    top.axhline(starting_balance, color=th.muted, linewidth=0.7, linestyle=(0, (2, 2)),
                zorder=2)
    handles = []
    values = [eq[np.isfinite(eq)]]
    if benchmark is not None:
        bench = _scaled_benchmark(np.asarray(benchmark, dtype=np.float64), starting_balance)
        keep = minmax_indices(bench)
        b_ret = (bench[-1] / starting_balance - 1) * 100 if starting_balance else 0.0
        handles += top.plot(x[keep], bench[keep], color=th.benchmark, linewidth=0.9, zorder=3,
                            label=f"buy & hold {b_ret:+.1f} %")
        values.append(bench[np.isfinite(bench)])
    keep = minmax_indices(eq)
    handles.insert(0, top.plot(x[keep], eq[keep], color=th.equity, linewidth=1.3, zorder=4,
                               label=f"equity {ret:+.1f} %")[0])
    keep = minmax_indices(dd)
    bottom.fill_between(x[keep], dd[keep], 0.0, color=th.loss, alpha=0.3, linewidth=0,
                        zorder=2)
    bottom.plot(x[keep], dd[keep], color=th.loss, linewidth=0.7, zorder=3)
    trough, depth = max_drawdown(eq)
    if depth < 0:
        peak = int(np.nanargmax(eq[: trough + 1]))
        top.axvspan(x[peak], x[trough], color=th.loss, alpha=0.12, linewidth=0, zorder=1)
        bottom.scatter([x[trough]], [depth], s=14, color=th.loss, zorder=5)
        bottom.annotate(f"{depth:.1f} %", (x[trough], depth), xytext=(4, 2),
                        textcoords="offset points", fontsize=style.SMALL_PT, color=th.text,
                        ha="left" if trough < 0.7 * len(eq) else "right", va="bottom")
        bottom.set_ylim(depth * 1.15, -depth * 0.6)  # headroom for the label
    else:
        bottom.set_ylim(-1.0, 0.8)
    style.label_panel(bottom, th, "drawdown %")
    every = np.concatenate([*values, np.array([starting_balance])])
    lo, hi = float(every.min()), float(every.max())
    pad = (hi - lo) * 0.05 or abs(hi) * 0.01 or 1.0
    top.set_ylim(lo - pad, hi + pad * 5)  # headroom for the legend
    style.legend(top, th, handles, ncol=2)
    top.set_xlim(x[0], x[-1] if len(x) > 1 else x[0] + 1)
    style.setup_time_axis(bottom, th)


def _scaled_benchmark(bench: np.ndarray, starting_balance: float) -> np.ndarray:
    finite = np.flatnonzero(np.isfinite(bench) & (bench != 0))
    if finite.size == 0:
        return np.full_like(bench, np.nan)
    return bench / bench[finite[0]] * starting_balance
