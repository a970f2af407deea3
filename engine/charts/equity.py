"""Equity chart: equity curve (with optional buy-and-hold benchmark) over an underwater panel.

Times are int ms UTC; equity, balances and the benchmark are in quote currency; drawdowns in
percent (``<= 0``). Long curves are drawn min/max-downsampled so spikes survive.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes

from engine.charts import style

DEFAULT_MAX_POINTS = 2_000


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


def render_equity_chart(timestamps: np.ndarray, equity: np.ndarray, path: Path, *, title: str,
                        starting_balance: float, benchmark: np.ndarray | None = None,
                        quote: str = "") -> Path:
    """Equity curve over drawdown (underwater) panel, written as a 1400×600 px PNG.

    Args:
        timestamps: ms UTC of each equity point (ascending).
        equity: account equity at each time, quote currency.
        path: PNG file to write (parents created).
        title: chart title.
        starting_balance: quote currency; drawn as a reference line.
        benchmark: optional buy-and-hold price series aligned with ``timestamps``; scaled so
            its first finite value equals ``starting_balance``.
        quote: quote currency name for the axis label (e.g. ``"USDT"``).

    Returns:
        ``path``.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    eq = np.asarray(equity, dtype=np.float64)
    if ts.shape != eq.shape:
        raise ValueError(f"timestamps {ts.shape} and equity {eq.shape} differ in shape")
    if benchmark is not None and np.shape(benchmark) != eq.shape:
        raise ValueError(f"benchmark {np.shape(benchmark)} and equity {eq.shape} differ in shape")
    unit = style.plain(quote) or "quote"
    dd = drawdown_pct(eq)
    fig = style.new_figure(14, 6, 100)
    try:
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        for ax in (top, bottom):
            style.style_axes(ax)
        top.set_title(style.plain(title), loc="left", fontsize=13, fontweight="bold")
        if eq.size == 0:
            top.text(0.5, 0.5, "no equity data", transform=top.transAxes, ha="center",
                     va="center", fontsize=12, color=style.MUTED)
        else:
            _draw_panels(top, bottom, ts, eq, dd, starting_balance, benchmark, unit)
        top.set_ylabel(f"equity ({unit})", fontsize=9)
        bottom.set_ylabel("drawdown (%)", fontsize=9)
        bottom.set_xlabel("time (UTC)", fontsize=9)
        return style.save_png(fig, path, 100)
    finally:
        style.close_figure(fig)


def _draw_panels(top: Axes, bottom: Axes, ts: np.ndarray, eq: np.ndarray, dd: np.ndarray,
                 starting_balance: float, benchmark: np.ndarray | None, unit: str) -> None:
    x = style.to_datenum(ts)
    final = eq[-1]
    ret = (final / starting_balance - 1) * 100 if starting_balance else 0.0
    top.axhline(starting_balance, color=style.MUTED, linewidth=0.9, linestyle=":",
                label=f"starting balance {starting_balance:,.2f}", zorder=2)
    if benchmark is not None:
        bench = _scaled_benchmark(np.asarray(benchmark, dtype=np.float64), starting_balance)
        keep = minmax_indices(bench)
        b_ret = (bench[-1] / starting_balance - 1) * 100 if starting_balance else 0.0
        top.plot(x[keep], bench[keep], color=style.BENCHMARK, linewidth=1.0, zorder=3,
                 label=f"buy & hold {bench[-1]:,.2f} ({b_ret:+.1f} %)")
    keep = minmax_indices(eq)
    top.plot(x[keep], eq[keep], color=style.EQUITY, linewidth=1.4, zorder=4,
             label=f"equity {final:,.2f} ({ret:+.1f} %)")

    keep = minmax_indices(dd)
    bottom.fill_between(x[keep], dd[keep], 0.0, color=style.LOSS, alpha=0.28, linewidth=0,
                        zorder=2)
    bottom.plot(x[keep], dd[keep], color=style.LOSS, linewidth=0.8, zorder=3)
    trough, depth = max_drawdown(eq)
    if depth < 0:
        peak = int(np.nanargmax(eq[: trough + 1]))
        label = (f"max drawdown {depth:.1f} % ({style.format_time(int(ts[peak]))[:10]} → "
                 f"{style.format_time(int(ts[trough]))[:10]})")
        top.axvspan(x[peak], x[trough], color=style.LOSS, alpha=0.07, linewidth=0, zorder=1)
        top.scatter([x[trough]], [eq[trough]], s=36, color=style.LOSS, edgecolors="black",
                    linewidths=0.6, zorder=5, label=label)
        bottom.scatter([x[trough]], [depth], s=36, color=style.LOSS, edgecolors="black",
                       linewidths=0.6, zorder=5)
        bottom.annotate(f"{depth:.1f} %", (x[trough], depth), xytext=(6, 4),
                        textcoords="offset points", fontsize=8, color=style.LOSS,
                        ha="left" if trough < 0.85 * len(eq) else "right", va="bottom")
        bottom.set_ylim(depth * 1.15, max(-depth * 0.05, 0.5))
    else:
        bottom.set_ylim(-1.0, 0.5)
    top.legend(loc="upper left", fontsize=8, framealpha=0.9)
    top.set_xlim(x[0], x[-1] if len(x) > 1 else x[0] + 1)
    style.setup_time_axis(bottom)
    top.tick_params(labelbottom=False)


def _scaled_benchmark(bench: np.ndarray, starting_balance: float) -> np.ndarray:
    finite = np.flatnonzero(np.isfinite(bench) & (bench != 0))
    if finite.size == 0:
        return np.full_like(bench, np.nan)
    return bench / bench[finite[0]] * starting_balance
