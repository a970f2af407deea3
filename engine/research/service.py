"""The research part of the application service: what the CLI and the bot call.

``PaperService.research`` is a ``ResearchService``. Its methods are async and run the work in
their own job pool (``engine.workers.JobPool``): in the bot a separate worker process, so the
bot process never imports Optuna, Dask, pandas or matplotlib, and a long study never holds up
``/backtest``; in the CLI a thread. Inside that worker a study starts its executor (a local
process pool, or the Dask cluster of ``PAPERBOT_DASK_SCHEDULER``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.backtest_request import BacktestRequest, check_request
from engine.errors import ServiceError
from engine.settings import Settings
from engine.workers import JobPool

Progress = Callable[[str], None] | None


class ResearchService:
    """Optimisation, walk-forward, look-ahead and Monte Carlo behind one API.

    Args:
        settings: validated settings.
        jobs: where the work runs; None: a thread of this process (the CLI).
    """

    def __init__(self, settings: Settings, jobs: JobPool | None = None) -> None:
        self.settings = settings
        self.jobs = jobs or JobPool(processes=0)

    def shutdown(self) -> None:
        """Stop the research workers (a study still running is abandoned; it resumes)."""
        self.jobs.shutdown()

    # ---- cheap checks, before a reply is deferred -----------------------------------------
    def check(self, request: BacktestRequest) -> None:
        """Validate strategy, symbol, timeframe, dates and numbers without candles.

        Raises:
            ServiceError: saying what is wrong and what is valid.
        """
        check_request(request, self.settings)

    def check_optimize(self, request: Any) -> None:
        """``check`` plus the search options and the ranges.

        Raises:
            ServiceError: saying what is wrong and what is valid.
        """
        from engine.research.optimize import checked_space

        checked_space(request, self.settings, backtest=True)

    # ---- the work ----------------------------------------------------------------------------
    async def optimize(self, request: Any, progress: Progress = None) -> Any:
        """Run or resume a study (``engine.research.optimize.run_optimize``)."""
        self.check_optimize(request)
        return await self.jobs.run("engine.research.optimize:run_optimize", request,
                                   self.settings, progress=progress)

    async def studies(self) -> list[Any]:
        """Stored studies, newest first (``engine.research.results.list_studies``)."""
        return await self.jobs.run("engine.research.service:_list_job", self.settings)

    async def study_best(self, study_id: int) -> Any:
        """A study's best parameters (``engine.research.results.study_best``)."""
        return await self.jobs.run("engine.research.service:_best_job", self.settings,
                                   study_id)

    async def walkforward(self, request: Any, progress: Progress = None) -> Any:
        """Walk-forward validation (``engine.research.walkforward.run_walkforward``)."""
        from engine.research.walkforward import check_walkforward

        check_walkforward(request)
        self.check_optimize(request.as_optimize())
        return await self.jobs.run("engine.research.walkforward:run_walkforward", request,
                                   self.settings, progress=progress)

    async def lookahead(self, request: BacktestRequest, cuts: int = 10,
                        progress: Progress = None) -> Any:
        """The full look-ahead check (``engine.research.lookahead_job.run_lookahead``)."""
        if not 1 <= cuts <= 100:
            raise ServiceError(f"cuts must be 1 to 100, got {cuts}")
        self.check(request)
        return await self.jobs.run("engine.research.lookahead_job:run_lookahead", request,
                                   self.settings, cuts, progress=progress)

    async def monte_carlo(self, folder: str, runs: int = 1000, seed: int = 7,
                          progress: Progress = None) -> Any:
        """Monte Carlo of the backtest written to ``out_dir/folder`` (its backtest.json).

        Raises:
            ServiceError: a bad folder name, or no such backtest.
        """
        from engine.research.montecarlo import check_folder_name

        check_folder_name(folder)
        return await self.jobs.run("engine.research.montecarlo:monte_carlo_job",
                                   Path(self.settings.out_dir) / folder, runs, seed,
                                   self.settings.chart_theme, progress=progress)


def _list_job(settings: Settings, progress: Progress = None) -> list[Any]:
    from engine.research.results import list_studies

    return list_studies(settings)


def _best_job(settings: Settings, study_id: int, progress: Progress = None) -> Any:
    from engine.research.results import study_best

    return study_best(settings, study_id)
