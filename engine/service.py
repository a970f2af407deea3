"""The application service: the one API that the CLI and the Discord bot call.

Methods are async, return plain dataclasses and raise ``ServiceError`` with text meant for the
trader. CPU-heavy work (backtests, charts) runs in a worker (``executor``), never on the event
loop, so the Discord gateway keeps its heartbeat during a long backtest.

pandas, pyarrow and matplotlib (files, backtests, charts) are imported inside the methods that
need them: the long-running process then stays small (see bench/forward_latency.py) when
backtests run in a worker process.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from engine.backtest_request import BacktestReport, BacktestRequest, check_request
from engine.errors import ServiceError
from engine.forward import lifecycle
from engine.forward.engine import ForwardEngine, RunSpec
from engine.forward.lifecycle import PanicReport
from engine.registry import StrategyInfo, discover
from engine.research.service import ResearchService
from engine.service_charts import ChartService
from engine.service_data import DataService
from engine.service_history import HistoryService
from engine.service_stats import StatsService
from engine.settings import Settings
from engine.store.control import AuditRow, audit_log
from engine.store.store import RunRecord, Store
from engine.types import Exit, Position, Trade
from engine.views import (
    PnlView,
    PositionView,
    RunView,
    pnl_view,
    position_view,
    run_view,
)
from engine.workers import JobPool

log = logging.getLogger(__name__)


def fmt_time(ms: int) -> str:
    """``ms`` UTC as ``YYYY-MM-DD HH:MM UTC``."""
    from engine.reporting import iso

    return f"{iso(ms)} UTC"


class PaperService(DataService, StatsService, HistoryService, ChartService):
    """Backtests, market data and forward runs behind one API (market data, statistics,
    backtest history and charts come from the mixins of ``engine.service_data``,
    ``engine.service_stats``, ``engine.service_history`` and ``engine.service_charts``).

    Args:
        settings: validated settings.
        jobs: where CPU-heavy jobs run (a worker process in the bot); None: a thread.
        store: the run database (needed by the run, position, trade and PnL methods).
        engine: the live forward engine (needed to start, stop and close; without it the
            read methods answer from the database).
    """

    def __init__(self, settings: Settings, jobs: JobPool | None = None,
                 store: Store | None = None, engine: ForwardEngine | None = None) -> None:
        self.settings = settings
        self.jobs = jobs or JobPool(processes=0)
        self.store = store
        self.engine = engine
        # studies get their own workers: a long study never holds up /backtest
        self.research = ResearchService(settings,
                                        JobPool(processes=2) if self.jobs.processes else None)

    # ---- strategies -----------------------------------------------------------------------
    def strategies(self) -> list[StrategyInfo]:
        """Every discovered strategy, sorted by name."""
        return list(discover(self.settings.strategy_dir).values())

    # ---- backtests ------------------------------------------------------------------------
    def check_backtest(self, request: BacktestRequest) -> None:
        """Validate a request without touching candles (cheap: before deferring a reply).

        Raises:
            ServiceError: bad strategy, params, timeframe, symbol or dates.
        """
        check_request(request, self.settings)

    async def backtest(self, request: BacktestRequest,
                       progress: Callable[[str], None] | None = None) -> BacktestReport:
        """Run a backtest in the job pool (never on the event loop) and return its report.

        ``progress`` receives short status texts while it runs.

        Raises:
            ServiceError: see ``engine.backtest_job.run_backtest_job``.
        """
        return await self.jobs.run("engine.backtest_job:run_backtest_job", request,
                                   self.settings, progress=progress)

    # ---- forward runs ---------------------------------------------------------------------
    def _need_store(self) -> Store:
        if self.store is None:
            raise ServiceError("no run database open")
        return self.store

    def _need_engine(self) -> ForwardEngine:
        if self.engine is None:
            raise ServiceError("forward runs need the running service (paperbot run / forward)")
        return self.engine

    async def run_record(self, run_id: str) -> RunRecord:
        """The stored run ``run_id``.

        Raises:
            ServiceError: unknown run id.
        """
        record = await self._need_store().run(run_id.strip())
        if record is None:
            raise ServiceError(f"unknown run {run_id!r}; list them with /forward list "
                               "(or paperbot runs)")
        return record

    def check_run(self, spec: RunSpec) -> None:
        """Validate a run request without the network (before deferring a reply).

        Raises:
            ServiceError: bad strategy, params, timeframe, exchange, symbol or balance.
        """
        self._need_engine().check_spec(spec)

    async def start_run(self, spec: RunSpec) -> RunView:
        """Start a forward run (see ``ForwardEngine.start_run``)."""
        record = await self._need_engine().start_run(spec)
        return await self.run(record.id)

    async def stop_run(self, run_id: str, actor: str,
                       close_positions: bool | None = None) -> RunView:
        """Stop a run for good; a run holding positions needs ``close_positions`` (True: close
        them at market first; False: pause instead). See ``engine.forward.lifecycle``.

        Raises:
            ServiceError: unknown or stopped run, or positions open without a choice.
        """
        await lifecycle.stop_run(self._need_engine(), run_id.strip(), actor, close_positions)
        return await self.run(run_id.strip())

    async def pause_run(self, run_id: str, actor: str) -> RunView:
        """Stop a run's entries; its exits keep being managed (``/forward pause``)."""
        await lifecycle.pause_run(self._need_engine(), run_id.strip(), actor)
        return await self.run(run_id.strip())

    async def resume_run(self, run_id: str, actor: str) -> RunView:
        """Resume a paused, stopped or failed run (``/forward resume``)."""
        await lifecycle.resume_run(self._need_engine(), run_id.strip(), actor)
        return await self.run(run_id.strip())

    async def close_all(self, run_id: str, actor: str) -> list[Trade]:
        """Paper market exit of every position of a run (``/close all``)."""
        record = await self.run_record(run_id)
        trades = await lifecycle.close_all(self._need_engine(), record.id, actor)
        return [replace(t, symbol=record.symbol) for t in trades]

    async def panic(self, actor: str) -> PanicReport:
        """The kill switch: pause every running run and close every open position."""
        report = await lifecycle.panic(self._need_engine(), actor)
        symbols = {r.id: r.symbol for r in await self._need_store().runs()}
        return replace(report, closed=[(rid, replace(t, symbol=symbols.get(rid, "")))
                                       for rid, t in report.closed])

    async def panic_preview(self) -> tuple[int, int]:
        """What ``panic`` would do now: (running runs to pause, open positions to close)."""
        records = await self._need_store().runs()
        running = sum(1 for r in records if r.status == "running")
        positions = 0
        for record in records:
            positions += len((await self._live(record))[2])
        return running, positions

    async def run(self, run_id: str) -> RunView:
        """One run with current figures."""
        record = await self.run_record(run_id)
        return await self._view(record)

    async def runs(self, status: str | None = None) -> list[RunView]:
        """Every run (newest first), optionally only those with ``status``."""
        return [await self._view(r) for r in await self._need_store().runs(status)]

    async def _live(self, record: RunRecord) -> tuple[float, float, list[Position], float | None]:
        live = self.engine.runs.get(record.id) if self.engine is not None else None
        if live is not None:
            pf = live.portfolio
            mark = pf.mark_price if not math.isnan(pf.mark_price) else None
            return pf.balance, pf.equity, list(pf.positions), mark
        positions = await self._need_store().positions(record.id)
        mark = record.mark_price
        equity = record.balance + sum((mark - p.entry_price) * p.size * p.direction
                                      for p in positions) if mark is not None else record.balance
        return record.balance, equity, positions, mark

    async def _view(self, record: RunRecord) -> RunView:
        balance, equity, positions, _ = await self._live(record)
        trades = await self._need_store().trades(record.id)
        state, detail = self._state(record)
        return run_view(record, balance, equity, len(positions), len(trades), state, detail,
                        self._locks(record))

    def _locks(self, record: RunRecord) -> tuple[str, ...]:
        """Reasons of the guard locks in force: the live run's, else the stored state's."""
        from engine.risk.guards import Guards

        live = self.engine.runs.get(record.id) if self.engine is not None else None
        guards = live.core.guards if live is not None and live.core is not None else None
        locks = guards.active() if guards is not None else \
            Guards.stored_locks(record.guard_state or {})
        return tuple(lock.reason for lock in locks)

    def _state(self, record: RunRecord) -> tuple[str, str]:
        """What a run is doing now, as (state, detail); see ``RunView.state``."""
        engine = self.engine
        if record.status == "paused":
            return "paused", record.stop_reason or ""
        if record.status != "running" or engine is None:
            return record.status, ""
        waiting = engine.waiting.get(record.id)
        if waiting is not None:
            return "waiting for data", f"since {fmt_time(waiting.since)}: {waiting.error}"
        live = engine.runs.get(record.id)
        if live is None:
            return "resuming", ""
        if live.feed_down:
            return "waiting for data", "live feed down; missed candles are backfilled"
        return "running", ""

    async def positions(self, run_id: str | None = None) -> list[PositionView]:
        """Open positions of one run, or of every run, marked to the last price."""
        records = [await self.run_record(run_id)] if run_id else \
            await self._need_store().runs()
        out = []
        for record in records:
            _, _, positions, mark = await self._live(record)
            out.extend(position_view(record.id, record.symbol, p, mark) for p in positions)
        return out

    async def trades(self, run_id: str) -> list[Trade]:
        """Closed trades of a run in exit order."""
        record = await self.run_record(run_id)
        trades = await self._need_store().trades(record.id)
        return [replace(t, symbol=record.symbol) for t in trades]

    async def exits(self, run_id: str) -> list[Exit]:
        """Every fill that reduced a position of a run (partial and final), in fill order."""
        record = await self.run_record(run_id)
        return await self._need_store().exits(record.id)

    async def pnl(self, run_id: str) -> PnlView:
        """Realised and unrealised PnL, equity, win rate and max drawdown since start."""
        record = await self.run_record(run_id)
        balance, equity, positions, _ = await self._live(record)
        store = self._need_store()
        trades = await store.trades(record.id)
        curve = [e for _, e in await store.equity_curve(record.id)]
        return pnl_view(record, balance, equity, trades, curve, len(positions),
                        sum(p.funding for p in positions))

    async def close_position(self, run_id: str, position_id: int, actor: str) -> Trade:
        """Paper market exit of one position of any run that holds it (``/close``)."""
        record = await self.run_record(run_id)
        trade = await lifecycle.close_position(self._need_engine(), record.id, position_id,
                                               actor)
        return replace(trade, symbol=record.symbol)

    async def audit_log(self, run_id: str | None = None, limit: int = 25) -> list[AuditRow]:
        """Who did what, newest first (``/audit``, ``paperbot audit``).

        Raises:
            ServiceError: unknown run, or a limit outside 1–200.
        """
        if not 1 <= limit <= 200:
            raise ServiceError(f"limit must be between 1 and 200, got {limit}")
        record = await self.run_record(run_id) if run_id else None
        return await audit_log(self._need_store(), record.id if record else None, limit)

    async def update_position(self, run_id: str, position_id: int, actor: str,
                              stop_loss: float | None = None, take_profit: float | None = None,
                              note: str = "") -> PositionView:
        """Move the stop-loss and/or take-profit of an open position (``/position``); in force
        from the next candle. ``nan`` removes a level.

        Raises:
            ServiceError: unknown run or position, or a level on the wrong side of the price.
        """
        record = await self.run_record(run_id)
        pos = await self._need_engine().update_levels(record.id, position_id, stop_loss,
                                                      take_profit, actor, note)
        live = self._need_engine().runs.get(record.id)
        mark = live.portfolio.mark_price if live is not None else None
        return position_view(record.id, record.symbol, pos, mark)

    async def break_even(self, run_id: str, position_id: int, actor: str) -> PositionView:
        """Move the stop-loss of an open position to its entry price.

        Raises:
            ServiceError: unknown run or position, or the price is already through the entry
                (a stop there would fill at once).
        """
        record = await self.run_record(run_id)
        live = self._need_engine().runs.get(record.id)
        pos = live.portfolio.get(position_id) if live is not None else None
        if pos is None:
            raise ServiceError(f"run {record.id} has no open position #{position_id}")
        mark = live.portfolio.mark_price if live is not None else math.nan
        if (mark - pos.entry_price) * pos.direction <= 0:
            raise ServiceError(f"the price {mark:,.2f} is not beyond the entry "
                               f"{pos.entry_price:,.2f} yet: a stop at break-even would fill "
                               "at once")
        return await self.update_position(record.id, position_id, actor,
                                          stop_loss=pos.entry_price, note="break-even")

    async def audit(self, actor: str, action: str, run_id: str | None = None,
                    detail: dict[str, Any] | None = None) -> None:
        """Record a command or a refused attempt in the audit log."""
        if self.store is not None:
            await self.store.audit(run_id, actor, action, detail or {})
