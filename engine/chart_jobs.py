"""Chart jobs run in the job pool (``engine.workers``): module-level and picklable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from data.ohlcv import OHLCV
from engine.types import Position, Trade


def trade_png(candles: OHLCV, trade: Trade, path: Path, title: str,
              progress: Callable[[str], None] | None = None) -> Path:
    """A small chart of one closed trade (alert attachment)."""
    from engine.charts import render_trade_chart

    return render_trade_chart(candles, trade, path, title=title)


def position_png(candles: OHLCV, position: Position, path: Path, title: str, timeframe: str,
                 progress: Callable[[str], None] | None = None) -> Path:
    """Recent candles with an open position's entry, stop-loss and take-profit."""
    from engine.charts import render_price_chart

    return render_price_chart(candles, [], path, title=title, timeframe=timeframe,
                              open_positions=[position], max_bars=200)
