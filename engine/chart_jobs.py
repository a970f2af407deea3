"""Chart jobs run in the job pool (``engine.workers``): module-level and picklable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from data.ohlcv import OHLCV
from engine.types import Exit, Position, Trade


def trade_png(candles: OHLCV, trade: Trade, path: Path, title: str, theme: str = "dark",
              lines: list[Any] | None = None, exits: list[Exit] | None = None,
              steps: list[Any] | None = None,
              progress: Callable[[str], None] | None = None) -> Path:
    """The chart of one closed trade (alert attachment), its parts marked when it scaled
    out."""
    from engine.charts import render_trade_chart

    return render_trade_chart(candles, trade, path, title=title, theme=theme,
                              lines=lines or [], exits=exits or [], steps=steps or [])


def position_png(candles: OHLCV, position: Position, path: Path, title: str,
                 theme: str = "dark", mark: float | None = None,
                 lines: list[Any] | None = None, exits: list[Exit] | None = None,
                 steps: list[Any] | None = None,
                 progress: Callable[[str], None] | None = None) -> Path:
    """Recent candles with an open position's entry, stop-loss, take-profit and scale-out
    levels, its trailing stop's path and the parts already taken (and the last price
    ``mark``, quote)."""
    from engine.charts import render_position_chart

    return render_position_chart(candles, position, path, title=title, theme=theme, mark=mark,
                                 lines=lines or [], exits=exits or [], steps=steps or [])
