"""What a strategy asks the price chart to draw: its declared indicators as aligned lines.

A strategy declares ``plots`` (indicator name → ``"price"``, ``"panel"`` or ``"panel:<group>"``)
and optionally ``plot_levels`` (guide lines of a panel); see ``engine.strategy.Strategy``.
``plot_lines`` reads the indicators the bound strategy registered and aligns each with the
base candles: an indicator of a higher timeframe takes, at each base candle's close, the value
of the last higher candle closed by then (what the strategy saw). No matplotlib here.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from data.timeframes import timeframe_ms
from engine.series import SeriesView, stored

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PlotLine:
    """One line to draw: ``values`` has one value per base candle (``nan`` where undefined).

    ``panel`` is ``"price"`` (over the candles) or the name of a panel below them; ``levels``
    are horizontal guide lines of that panel (indicator units).
    """

    name: str
    values: np.ndarray
    panel: str
    levels: tuple[float, ...] = ()


def plot_lines(strategy: Any, first: int = 0, count: int | None = None) -> list[PlotLine]:
    """The declared plots of a bound ``strategy`` for base candles ``first .. first+count``.

    Names in ``strategy.plots`` are formatted with the strategy's params (``"sma{fast}"`` →
    ``"sma10"``); an indicator with several outputs gives one line per output, in one panel.
    A declared name that was never registered is skipped with a warning (the chart still
    draws).
    """
    registered = getattr(strategy, "registered", {}) or {}
    market = getattr(strategy, "_market", None)
    if market is None or not strategy.plots:
        return []
    base_ts = stored(market.base.timestamp)
    window = slice(first, len(base_ts) if count is None else first + count)
    lines: list[PlotLine] = []
    for key, where in strategy.plots.items():
        name = _format(key, strategy.params)
        views = registered.get(name)
        if views is None:
            log.warning("%s: plots names %r, which on_init did not register (registered: %s)",
                        type(strategy).__name__, name, ", ".join(registered) or "none")
            continue
        outputs = views if isinstance(views, tuple) else (views,)
        panel = "price" if where == "price" else (where.partition(":")[2] or name)
        levels = _levels(strategy, key, name)
        for k, view in enumerate(outputs):
            label = name if len(outputs) == 1 else f"{name}[{k}]"
            values = _aligned(market, view, base_ts, window)
            lines.append(PlotLine(label, values, panel, levels))
    return lines


def _format(key: str, params: dict[str, Any]) -> str:
    try:
        return key.format(**params)
    except (KeyError, IndexError, ValueError):
        return key


def _levels(strategy: Any, key: str, name: str) -> tuple[float, ...]:
    spec = strategy.plot_levels.get(key) or strategy.plot_levels.get(name) or ()
    out = []
    for item in spec:
        value = strategy.params.get(item) if isinstance(item, str) else item
        if isinstance(value, int | float) and math.isfinite(value):
            out.append(float(value))
    return tuple(out)


def _aligned(market: Any, view: SeriesView, base_ts: np.ndarray, window: slice) -> np.ndarray:
    """``view``'s stored values, one per base candle of ``window`` (forward-filled from a
    higher timeframe: each candle is looked up on its own, so only the window is aligned)."""
    values = np.asarray(stored(view), dtype=np.float64)
    if view.timeframe == market.timeframe:
        return values[window]
    base_ts = base_ts[window]
    frame_ts = stored(market[view.timeframe].timestamp)
    bin_close = frame_ts[: len(values)] + timeframe_ms(view.timeframe)
    base_close = base_ts + timeframe_ms(market.timeframe)
    seen = np.searchsorted(bin_close, base_close, side="right")
    out = np.full(base_ts.shape, np.nan)
    ok = seen > 0
    out[ok] = values[seen[ok] - 1]
    return out
