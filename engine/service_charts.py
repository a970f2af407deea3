"""Charts of live runs for alerts and buttons (mixed into ``engine.service.PaperService``).

The candles (and the strategy's price lines) are copied out of the run's memory on the event
loop, cheaply; drawing runs in the job pool, never on the loop. Prices in quote currency,
times ms UTC.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from data.ohlcv import OHLCV
from engine.errors import ServiceError
from engine.types import Exit, Position, Trade

log = logging.getLogger(__name__)


class ChartService:
    """Mixin of ``PaperService``: needs ``engine``, ``jobs`` and ``settings``."""

    engine: Any
    jobs: Any
    settings: Any

    def _live_run(self, run_id: str) -> Any:
        """The live run ``run_id`` of the engine (None when it is not live, or no engine)."""
        return self.engine.runs.get(run_id) if self.engine is not None else None

    def _recent_candles(self, run_id: str, start: int | None = None,
                        count: int = 90) -> tuple[OHLCV, list[Any]] | None:
        """The newest ``count`` base candles of a live run (back to 20 before ``start`` when
        given, ms UTC) and the strategy's plot lines over them; None when the run is not live.
        """
        live = self._live_run(run_id)
        if live is None or live.market is None:
            return None
        base = live.market.base
        n = len(base)
        ts = base.timestamp.values
        first = max(0, n - count)
        if start is not None:  # keep the trade's entry in view, with some context
            first = min(first, max(0, int(ts.searchsorted(start)) - 20))
        cols = [getattr(base, c).values[first:n].copy() for c in
                ("timestamp", "open", "high", "low", "close", "volume")]
        from engine.plots import plot_lines

        try:
            lines = [ln for ln in plot_lines(live.strategy, first, n - first)
                     if ln.panel == "price"]
        except Exception:  # a strategy's plots never stop an alert
            log.exception("plot lines of run %s", run_id)
            lines = []
        return OHLCV(*cols), [replace(ln, values=ln.values.copy()) for ln in lines]

    def _title(self, run_id: str, symbol: str, item_id: int) -> str:
        live = self._live_run(run_id)
        rec = live.record if live is not None else None
        return f"#{item_id} {symbol} {rec.timeframe} · {rec.strategy}" if rec \
            else f"#{item_id} {symbol}"

    async def trade_chart(self, run_id: str, trade: Trade) -> Path | None:
        """PNG of a closed trade of a live run (None when its candles are not in memory)."""
        recent = self._recent_candles(run_id, trade.entry_time)
        if recent is None or len(recent[0]) == 0:
            return None
        path = Path(self.settings.out_dir) / "alerts" / f"{run_id}_trade{trade.id}.png"
        return await self.jobs.run("engine.chart_jobs:trade_png", recent[0], trade, path,
                                   self._title(run_id, trade.symbol, trade.id),
                                   self.settings.chart_theme, recent[1],
                                   *await self._history(run_id, trade.id))

    async def _history(self, run_id: str, position_id: int) -> tuple[list[Exit], list[Any]]:
        """One position's stored exits (partial and final) and level steps ([] and [] without
        a store): what its chart marks besides the candles."""
        store = getattr(self, "store", None)
        if store is None:
            return [], []
        from engine.store.level_moves import level_steps

        return (await store.exits(run_id, position_id),
                await level_steps(store.db, run_id, position_id))

    async def opened_chart(self, run_id: str, position: Position) -> Path | None:
        """PNG of a position just opened: recent candles, entry, stop-loss and take-profit
        (None when the run's candles are not in memory)."""
        recent = self._recent_candles(run_id, None, count=60)
        if recent is None or len(recent[0]) == 0:
            return None
        path = Path(self.settings.out_dir) / "alerts" / f"{run_id}_opened{position.id}.png"
        return await self.jobs.run("engine.chart_jobs:position_png", recent[0], position, path,
                                   self._title(run_id, position.symbol, position.id),
                                   self.settings.chart_theme, None, recent[1])

    async def position_chart(self, run_id: str, position_id: int) -> Path:
        """PNG of an open position with the recent candles and its open PnL (Chart button).

        Raises:
            ServiceError: the run is not live or has no such open position.
        """
        live = self._live_run(run_id)
        pos = live.portfolio.get(position_id) if live is not None else None
        recent = self._recent_candles(run_id, pos.entry_time if pos else None)
        if pos is None or recent is None or live is None:
            raise ServiceError(f"run {run_id} has no open position #{position_id}")
        path = Path(self.settings.out_dir) / "alerts" / f"{run_id}_position{position_id}.png"
        mark = live.portfolio.mark_price
        return await self.jobs.run("engine.chart_jobs:position_png", recent[0], pos, path,
                                   self._title(run_id, pos.symbol, pos.id) + " (open)",
                                   self.settings.chart_theme,
                                   None if math.isnan(mark) else mark, recent[1],
                                   *await self._history(run_id, pos.id))
