"""``paperbot optimize`` / ``/optimize run``: an Optuna study over a strategy's parameters.

The study is stored in the study database (``PAPERBOT_STUDY_DB``) under its name, with what it
searches (strategy, symbol, timeframe, span, fees, objective, space) as metadata: running the
same name again resumes it (trials left running by a killed process are marked failed, the
remaining trials run), and a different search under an existing name is refused. The report:
the top ten trials, the best parameters with their full metrics, the importance of each
parameter and a heatmap PNG over two parameters.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.backtest_request import BacktestRequest, check_request, date_range
from engine.errors import ServiceError
from engine.registry import get_strategy
from engine.research.search import (
    OBJECTIVES,
    SAMPLERS,
    Window,
    make_sampler,
    search,
    trial_budget,
)
from engine.research.space import ParamRange, parse_space, space_text
from engine.settings import Settings

#: metadata fields that must match to resume a study
IDENTITY = ("strategy", "symbol", "timeframe", "exchange", "start", "end", "objective",
            "space", "params", "fees", "balance", "min_trades")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/+-]{0,99}$")


@dataclass(frozen=True, slots=True)
class OptimizeRequest:
    """An optimisation as asked (strings as typed; None = default).

    ``backtest`` carries strategy, symbol, timeframe, exchange, dates, balance, fees and the
    parameters held fixed; ``space`` the ranges (``["fast=5:50", …]``, None: the strategy's
    ``param_space``); ``study`` the name (None: derived from the request).
    """

    backtest: BacktestRequest
    space: tuple[str, ...] | None = None
    objective: str = "sharpe"
    min_trades: int = 20
    trials: int = 200
    sampler: str = "tpe"
    study: str | None = None
    seed: int = 42
    workers: int | None = None
    charts: bool = True


@dataclass(frozen=True, slots=True)
class TrialRow:
    """One trial: number, parameters, objective value (None unless complete), metrics."""

    number: int
    params: dict[str, Any]
    value: float | None
    state: str
    metrics: dict[str, Any] | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class OptimizeReport:
    """What ``run_optimize`` returns (plain data: it crosses process boundaries)."""

    study: str
    study_id: int
    resumed: bool
    strategy: str
    symbol: str
    timeframe: str
    exchange: str
    start: int
    end: int
    objective: str
    space: str
    sampler: str
    complete: int
    pruned: int
    failed: int
    ran_now: int
    top: list[TrialRow]
    best: TrialRow | None
    importance: dict[str, float]
    heatmap: Path | None
    executor: str
    elapsed_s: float
    db_path: Path
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``optimize --json`` object."""
        def row(t: TrialRow | None) -> dict[str, Any] | None:
            return None if t is None else {"number": t.number, "params": t.params,
                                           "value": t.value, "state": t.state,
                                           "metrics": t.metrics, "note": t.note}
        return {"study": self.study, "study_id": self.study_id, "resumed": self.resumed,
                "strategy": self.strategy, "symbol": self.symbol,
                "timeframe": self.timeframe, "exchange": self.exchange, "start": self.start,
                "end": self.end, "objective": self.objective, "space": self.space,
                "sampler": self.sampler, "complete": self.complete, "pruned": self.pruned,
                "failed": self.failed, "ran_now": self.ran_now,
                "top": [row(t) for t in self.top], "best": row(self.best),
                "importance": self.importance,
                "heatmap": str(self.heatmap) if self.heatmap else None,
                "executor": self.executor, "elapsed_s": self.elapsed_s,
                "db": str(self.db_path), "warnings": self.warnings}


def study_db(settings: Settings) -> Path:
    """``PAPERBOT_STUDY_DB``, by default ``studies.db`` beside the run database."""
    return settings.study_db or Path(settings.db_path).parent / "studies.db"


def check_optimize(request: OptimizeRequest) -> None:
    """Cheap checks of the numbers and names (before any loading).

    Raises:
        ServiceError: saying what is wrong and what is valid.
    """
    if request.objective not in OBJECTIVES:
        raise ServiceError(f"unknown objective {request.objective!r}; use one of "
                           f"{', '.join(OBJECTIVES)}")
    if request.sampler not in SAMPLERS:
        raise ServiceError(f"unknown sampler {request.sampler!r}; use one of "
                           f"{', '.join(SAMPLERS)}")
    if not 1 <= request.trials <= 100_000:
        raise ServiceError(f"trials must be 1 to 100,000, got {request.trials}")
    if not 0 <= request.min_trades <= 1_000_000:
        raise ServiceError(f"min trades must be 0 to 1,000,000, got {request.min_trades}")
    if request.workers is not None and not 1 <= request.workers <= 256:
        raise ServiceError(f"workers must be 1 to 256, got {request.workers}")
    if request.study is not None and not _NAME.match(request.study):
        raise ServiceError(f"bad study name {request.study!r}: use up to 100 letters, digits "
                           "and . _ - : / +")


def default_name(request: OptimizeRequest, symbol: str, timeframe: str) -> str:
    """``sma_cross-BTC-USDT-1h-sharpe-2019-01-01-2019-12-31`` (dates: ``all`` when open)."""
    b = request.backtest
    return (f"{b.strategy}-{symbol.replace('/', '-').replace(':', '-')}-{timeframe}-"
            f"{request.objective}-{b.start or 'all'}-{b.end or 'all'}")


def open_study(settings: Settings, name: str, meta: dict[str, Any], sampler: Any
               ) -> tuple[Any, bool, int]:
    """Create study ``name`` or load it (same search only); returns (study, resumed, id).

    Trials a killed process left running are marked failed.

    Raises:
        ServiceError: the name holds a different search, or the database cannot be opened.
    """
    import optuna
    from optuna.trial import TrialState

    from engine.research.studies import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(study_db(settings))
    try:
        storage.get_study_id_from_name(name)
        resumed = True
    except KeyError:
        resumed = False
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                direction="maximize", load_if_exists=True)
    study_id = storage.get_study_id_from_name(name)
    if resumed:
        old = study.user_attrs.get("paperbot", {})
        changed = [k for k in IDENTITY if old.get(k) != meta.get(k)]
        if changed:
            raise ServiceError(f"study {name!r} already holds another search (its "
                               f"{', '.join(changed)} differ); choose another study name")
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            storage.set_trial_state_values(
                storage.get_trial_id_from_study_id_trial_number(study_id, trial.number),
                TrialState.FAIL)
    else:
        study.set_user_attr("paperbot", meta)
    return study, resumed, study_id


def run_optimize(request: OptimizeRequest, settings: Settings,
                 progress: Callable[[str], None] | None = None,
                 executor: Any = None) -> OptimizeReport:
    """Run (or resume) the study of ``request`` to its number of trials (blocking).

    ``executor`` (tests) replaces the one the settings ask for; it is started here.

    Raises:
        ServiceError: bad input, no candles, a study name taken by another search, an
            unreachable Dask scheduler.
    """
    from engine.research.data import load_study_data
    from engine.research.executor import make_executor

    started = time.perf_counter()
    say = progress or (lambda _text: None)
    info, space = checked_space(request, settings)
    say("loading candles")
    data = load_study_data(request.backtest, settings, space)
    ds = data.dataset
    start, end = date_range(request.backtest.start, request.backtest.end)
    traded_start = int(ds.candles.timestamp[data.first])
    traded_end = int(ds.candles.timestamp[-1])
    name = request.study or default_name(request, ds.symbol, ds.timeframe)
    meta = study_meta(request, ds, space, start, end)
    sampler = make_sampler(request.sampler, space, request.seed)
    study, resumed, study_id = open_study(settings, name, meta, sampler)
    budget = trial_budget(request.sampler, space, request.trials)
    own = executor is None
    executor = executor or make_executor(settings.dask_scheduler, request.workers)
    try:
        say(f"starting {executor.description}")
        executor.start(ds)
        ran = search(study, executor, space, info.cls, ds.timeframe,
                     request.backtest.params, Window(0, len(ds.candles), traded_start), budget,
                     request.objective, request.min_trades, say)
    finally:
        if own:
            executor.close()
    from engine.research.results import summarise

    return summarise(study, study_id, settings, name, resumed, meta, traded_start, traded_end,
                     ran, executor.description, time.perf_counter() - started,
                     list(data.warnings), request.charts)


def checked_space(request: OptimizeRequest, settings: Settings, *,
                  backtest: bool = False) -> tuple[Any, dict[str, ParamRange]]:
    """``check_optimize``, then (``backtest``) ``check_request`` of the backtest part, then
    the strategy and the ranges of ``request.space`` over its parameters (no candles).

    Returns:
        (the strategy's ``StrategyInfo``, the parsed space).

    Raises:
        ServiceError: saying what is wrong and what is valid (in that order of checks).
    """
    check_optimize(request)
    if backtest:
        check_request(request.backtest, settings)
    info = get_strategy_or_error(request.backtest.strategy, settings)
    return info, parse_space(list(request.space) if request.space else None, info.params,
                             info.param_space, info.name)


def get_strategy_or_error(name: str, settings: Settings) -> Any:
    """The strategy's ``StrategyInfo`` (with ``param_space``).

    Raises:
        ServiceError: unknown strategy, listing the known ones.
    """
    from engine.registry import UnknownStrategyError

    try:
        info = get_strategy(name, settings.strategy_dir)
    except UnknownStrategyError as exc:
        raise ServiceError(str(exc)) from None
    return info


def study_meta(request: OptimizeRequest, ds: Any, space: dict, start: int | None,
               end: int | None) -> dict[str, Any]:
    """What identifies the search (checked on resume) plus what helps to list it."""
    return {
        "strategy": ds.strategy, "symbol": ds.symbol, "timeframe": ds.timeframe,
        "exchange": ds.exchange, "start": start, "end": end,
        "objective": request.objective, "space": space_text(space),
        "params": dict(request.backtest.params),
        "fees": [ds.fills.taker_fee_bps, ds.fills.maker_fee_bps, ds.fills.slippage_bps],
        "balance": ds.balance, "min_trades": request.min_trades,
        "sampler": request.sampler, "trials": request.trials,
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
    }
