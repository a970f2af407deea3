"""Reading studies back: the report of one study, the list of all of them, a study's best.

Shared by ``paperbot optimize``, ``paperbot studies``, ``/optimize history`` and the
"Backtest best" / "Forward-test best" buttons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import ServiceError
from engine.settings import Settings


def _rows(study: Any) -> tuple[list[Any], list[Any], list[Any]]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return ([t for t in trials if t.state == TrialState.COMPLETE],
            [t for t in trials if t.state == TrialState.PRUNED],
            [t for t in trials if t.state == TrialState.FAIL])


def trial_row(trial: Any) -> Any:
    """A ``TrialRow`` from an Optuna ``FrozenTrial``."""
    from engine.research.optimize import TrialRow

    return TrialRow(trial.number, dict(trial.params), trial.value,
                    trial.state.name.lower(), trial.user_attrs.get("metrics"),
                    trial.user_attrs.get("note", ""))


def importance(study: Any, complete: list[Any]) -> dict[str, float]:
    """Each searched parameter's importance (Optuna's PED-ANOVA: how much the best trials'
    values of it differ from all trials'), summing to 1; empty with too few trials or a
    single parameter."""
    names = {k for t in complete for k in t.params}
    if len(complete) < 4 or len(names) < 2:
        return {}
    try:
        from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

        found = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
    except (ValueError, RuntimeError, ZeroDivisionError, ImportError):
        return {}
    return {k: float(v) for k, v in found.items() if math.isfinite(v)}


def summarise(study: Any, study_id: int, settings: Settings, name: str, resumed: bool,
              meta: dict[str, Any],
              start: int, end: int, ran: int, executor: str, elapsed: float,
              warnings: list[str], charts: bool) -> Any:
    """The ``OptimizeReport`` of ``study`` (and its heatmap PNG when ``charts``)."""
    from engine.research.optimize import OptimizeReport, study_db

    complete, pruned, failed = _rows(study)
    ranked = sorted(complete, key=lambda t: t.value, reverse=True)
    weights = importance(study, complete)
    heatmap = None
    if charts and ranked:
        numeric = [k for k, v in ranked[0].params.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        pair = sorted(numeric, key=lambda k: -weights.get(k, 0.0))[:2]
        if len(pair) == 2:
            from engine.research.charts import render_heatmap

            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
            folder = Path(settings.out_dir) / "studies" / f"{_safe(name)}_{stamp}"
            points = [(t.params[pair[0]], t.params[pair[1]], t.value) for t in complete]
            heatmap = render_heatmap(points, pair[0], pair[1], meta["objective"],
                                     folder / "heatmap.png", title=name,
                                     theme=settings.chart_theme)
    return OptimizeReport(
        study=name, study_id=study_id, resumed=resumed, strategy=meta["strategy"],
        symbol=meta["symbol"], timeframe=meta["timeframe"], exchange=meta["exchange"],
        start=start, end=end, objective=meta["objective"], space=meta["space"],
        sampler=meta["sampler"], complete=len(complete), pruned=len(pruned),
        failed=len(failed), ran_now=ran, top=[trial_row(t) for t in ranked[:10]],
        best=trial_row(ranked[0]) if ranked else None, importance=weights, heatmap=heatmap,
        executor=executor, elapsed_s=elapsed, db_path=study_db(settings), warnings=warnings)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:80]


@dataclass(frozen=True, slots=True)
class StudyView:
    """One stored study for ``paperbot studies`` and ``/optimize history``."""

    study_id: int
    name: str
    strategy: str
    symbol: str
    timeframe: str
    objective: str
    space: str
    trials: int
    best_value: float | None
    best_params: dict[str, Any]
    created: str


def list_studies(settings: Settings) -> list[StudyView]:
    """Every study in the study database, newest first (none when the file does not exist)."""
    from engine.research.optimize import study_db

    path = study_db(settings)
    if not path.exists():
        return []
    import optuna

    from engine.research.studies import open_storage

    out = []
    storage = open_storage(path)
    for s in optuna.get_all_study_summaries(storage, include_best_trial=True):
        meta = s.user_attrs.get("paperbot", {})
        best = s.best_trial
        study_id = storage.get_study_id_from_name(s.study_name)
        out.append(StudyView(study_id, s.study_name, meta.get("strategy", "?"),
                             meta.get("symbol", "?"), meta.get("timeframe", "?"),
                             meta.get("objective", "?"), meta.get("space", ""), s.n_trials,
                             best.value if best else None, dict(best.params) if best else {},
                             meta.get("created", "")))
    return sorted(out, key=lambda v: v.study_id, reverse=True)


@dataclass(frozen=True, slots=True)
class StudyBest:
    """A study's best trial with what is needed to backtest or forward-test it."""

    study_id: int
    name: str
    meta: dict[str, Any]
    params: dict[str, Any]
    value: float


def study_best(settings: Settings, study_id: int) -> StudyBest:
    """The best trial of study ``study_id``, with its fixed parameters merged in.

    Raises:
        ServiceError: unknown study, or no completed trial.
    """
    from engine.research.optimize import study_db

    path = study_db(settings)
    if not path.exists():
        raise ServiceError("no studies yet; run /optimize first")
    import optuna

    from engine.research.studies import open_storage

    storage = open_storage(path)
    try:
        name = storage.get_study_name_from_id(study_id)
    except KeyError:
        raise ServiceError(f"unknown study #{study_id}; list them with /optimize history "
                           "(or paperbot studies)") from None
    study = optuna.load_study(study_name=name, storage=storage)
    try:
        best = study.best_trial
    except ValueError:
        raise ServiceError(f"study {name!r} has no completed trial yet") from None
    meta = study.user_attrs.get("paperbot", {})
    params = {**meta.get("params", {}), **best.params}
    return StudyBest(study_id, name, meta, params, float(best.value))
