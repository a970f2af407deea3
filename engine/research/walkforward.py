"""Walk-forward validation: optimise on a train window, test the best parameters on the
window that follows, roll forward; only the test windows make the out-of-sample record.

Windows (``folds``): rolling — train ``[s + k·test, s + k·test + train)``, test the next
``test``; anchored — every train window starts at ``s``. Folds run while a whole test window
fits before the end of the candles. Each fold's search is a seeded in-memory Optuna study on
the shared executor (the candles went to the workers once, for every fold).

The out-of-sample equity curve chains the test windows: each starts with the equity the
previous one ended with (a test backtest is run from the starting balance and scaled, exact
for percent-of-equity sizing). Walk-forward efficiency (Pardo) = mean out-of-sample return
per day / mean in-sample return per day, over the folds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from data.timeframes import timeframe_ms
from engine import formatting as fmt
from engine.backtest_request import BacktestRequest
from engine.errors import ServiceError
from engine.metrics import compute_metrics
from engine.research.optimize import OptimizeRequest, check_optimize, checked_space
from engine.research.search import Window, make_sampler, search, trial_budget
from engine.research.space import space_text
from engine.research.trial import TrialSpec
from engine.settings import Settings

DAY_MS = 86_400_000
_DURATION = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNIT_MS = {"h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}


def parse_duration(text: str, what: str) -> int:
    """``"90d"`` → ms (``h`` hours, ``d`` days, ``w`` weeks).

    Raises:
        ServiceError: for anything else.
    """
    match = _DURATION.match(text or "")
    if not match or int(match[1]) == 0:
        raise ServiceError(f"bad {what} window {text!r}: use a number of hours, days or weeks, "
                           "e.g. 90d, 12w or 720h")
    return int(match[1]) * _UNIT_MS[match[2]]


@dataclass(frozen=True, slots=True)
class Fold:
    """Spans of one fold, ms UTC open times, ``[start, end)``."""

    train_start: int
    train_end: int
    test_start: int
    test_end: int


def folds(start: int, end: int, train_ms: int, test_ms: int, anchored: bool) -> list[Fold]:
    """The folds between ``start`` and ``end`` (see the module docstring)."""
    out, k = [], 0
    while True:
        train_end = start + train_ms + k * test_ms
        test_end = train_end + test_ms
        if test_end > end:
            return out
        out.append(Fold(start if anchored else start + k * test_ms, train_end, train_end,
                        test_end))
        k += 1


@dataclass(frozen=True, slots=True)
class WalkForwardRequest:
    """A walk-forward as asked: the search of ``OptimizeRequest`` plus the windows."""

    backtest: BacktestRequest
    space: tuple[str, ...] | None = None
    objective: str = "sharpe"
    min_trades: int = 5
    trials: int = 50
    sampler: str = "tpe"
    seed: int = 42
    workers: int | None = None
    train: str = "90d"
    test: str = "30d"
    anchored: bool = False
    charts: bool = True

    def as_optimize(self) -> OptimizeRequest:
        """The search part, for the checks shared with ``optimize``."""
        return OptimizeRequest(self.backtest, self.space, self.objective, self.min_trades,
                               self.trials, self.sampler, None, self.seed, self.workers)


def check_walkforward(request: WalkForwardRequest) -> None:
    """Check the windows and the search options (no candles needed).

    Raises:
        ServiceError: saying what is wrong and what is valid.
    """
    parse_duration(request.train, "train")
    parse_duration(request.test, "test")
    check_optimize(request.as_optimize())


@dataclass(frozen=True, slots=True)
class FoldResult:
    """One fold: its spans, the best in-sample parameters and both sides' figures."""

    fold: Fold
    params: dict[str, Any] | None
    in_sample: dict[str, Any] | None
    out_of_sample: dict[str, Any] | None
    in_value: float | None
    out_value: float | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class WalkForwardReport:
    """What ``run_walkforward`` returns (plain data)."""

    strategy: str
    symbol: str
    timeframe: str
    exchange: str
    objective: str
    space: str
    anchored: bool
    folds: list[FoldResult]
    overall: dict[str, Any] | None
    efficiency: float | None
    chart: Path | None
    executor: str
    elapsed_s: float
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``walkforward --json`` object (times ms UTC)."""
        return {"strategy": self.strategy, "symbol": self.symbol,
                "timeframe": self.timeframe, "exchange": self.exchange,
                "objective": self.objective, "space": self.space, "anchored": self.anchored,
                "folds": [{"train_start": f.fold.train_start, "train_end": f.fold.train_end,
                           "test_start": f.fold.test_start, "test_end": f.fold.test_end,
                           "params": f.params, "in_sample": f.in_sample,
                           "out_of_sample": f.out_of_sample, "in_value": f.in_value,
                           "out_value": f.out_value, "note": f.note} for f in self.folds],
                "overall": self.overall, "efficiency": self.efficiency,
                "chart": str(self.chart) if self.chart else None, "executor": self.executor,
                "elapsed_s": self.elapsed_s, "warnings": self.warnings}


def _per_day(metrics: dict[str, Any] | None, span_ms: int) -> float | None:
    if not metrics:
        return None
    return float(metrics["total_return_pct"]) / (span_ms / DAY_MS)


def run_walkforward(request: WalkForwardRequest, settings: Settings,
                    progress: Callable[[str], None] | None = None,
                    executor: Any = None) -> WalkForwardReport:
    """Run every fold (blocking). ``executor`` (tests) replaces the configured one.

    Raises:
        ServiceError: bad input, no candles, a span too short for one fold.
    """
    import optuna

    from engine.research.data import load_study_data
    from engine.research.executor import make_executor

    started = time.perf_counter()
    say = progress or (lambda _text: None)
    check_walkforward(request)
    info, space = checked_space(request.as_optimize(), settings)
    say("loading candles")
    data = load_study_data(request.backtest, settings, space)
    ds = data.dataset
    ts = ds.candles.timestamp
    step = timeframe_ms(ds.timeframe)
    plan = folds(int(ts[data.first]), int(ts[-1]) + step,
                 parse_duration(request.train, "train"), parse_duration(request.test, "test"),
                 request.anchored)
    if not plan:
        raise ServiceError(f"{fmt.iso(int(ts[data.first]))} → {fmt.iso(int(ts[-1]) + step)} "
                           f"holds no {request.train} train window followed by a "
                           f"{request.test} test window; widen the dates or shorten the windows")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    own = executor is None
    executor = executor or make_executor(settings.dask_scheduler, request.workers)
    results: list[FoldResult] = []
    pieces: list[Any] = []
    try:
        executor.start(ds)
        budget = trial_budget(request.sampler, space, request.trials)
        for k, fold in enumerate(plan):
            label = f"fold {k + 1}/{len(plan)}"
            lo = max(0, int(np.searchsorted(ts, fold.train_start)) - data.warmup)
            hi = int(np.searchsorted(ts, fold.train_end))
            study = optuna.create_study(direction="maximize", sampler=make_sampler(
                request.sampler, space, request.seed + k))
            search(study, executor, space, info.cls, ds.timeframe, request.backtest.params,
                   Window(lo, hi, fold.train_start), budget, request.objective,
                   request.min_trades, say, label)
            try:
                best = study.best_trial
            except ValueError:
                results.append(FoldResult(fold, None, None, None, None, None,
                                          "no trial met the constraints in-sample"))
                continue
            params = {**request.backtest.params, **best.params}
            outcome = _test(executor, fold, params, ts, data.warmup, k)
            if outcome.metrics is None:
                results.append(FoldResult(fold, params, best.user_attrs.get("metrics"), None,
                                          best.value, None, outcome.error or "test failed"))
                continue
            from engine.research.search import objective_value

            out_value, _ = objective_value(outcome.metrics, request.objective, 0)
            results.append(FoldResult(fold, params, best.user_attrs.get("metrics"),
                                      outcome.metrics, best.value, out_value))
            pieces.append(outcome)
    finally:
        if own:
            executor.close()
    say("stitching the out-of-sample record")
    overall, chart = _stitch(pieces, ds, settings, request, results)
    is_rates = [_per_day(f.in_sample, f.fold.train_end - f.fold.train_start) for f in results]
    oos_rates = [_per_day(f.out_of_sample, f.fold.test_end - f.fold.test_start)
                 for f in results]
    pairs = [(i, o) for i, o in zip(is_rates, oos_rates, strict=True)
             if i is not None and o is not None]
    efficiency = None
    if pairs and np.mean([i for i, _ in pairs]) > 0:
        efficiency = float(np.mean([o for _, o in pairs]) / np.mean([i for i, _ in pairs]))
    return WalkForwardReport(ds.strategy, ds.symbol, ds.timeframe, ds.exchange,
                             request.objective, space_text(space), request.anchored, results,
                             overall, efficiency, chart, executor.description,
                             time.perf_counter() - started, list(data.warnings))


def _test(executor: Any, fold: Fold, params: dict[str, Any], ts: np.ndarray, warmup: int,
          k: int) -> Any:
    lo = max(0, int(np.searchsorted(ts, fold.test_start)) - warmup)
    hi = int(np.searchsorted(ts, fold.test_end))
    executor.submit(TrialSpec(-1 - k, params, lo, hi, fold.test_start, trades=True))
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        for outcome in executor.collect(timeout=1.0):
            return outcome
    raise ServiceError("a walk-forward test backtest did not finish within an hour")


def _stitch(pieces: list[Any], ds: Any, settings: Settings, request: WalkForwardRequest,
            results: list[FoldResult]) -> tuple[dict[str, Any] | None, Path | None]:
    """Chain the test windows into one record; metrics and the PNG of its equity."""
    if not pieces:
        return None, None
    capital = ds.balance
    equity, times, trades = [], [], []
    exposed = 0
    for piece in pieces:
        scale = capital / ds.balance
        curve = np.asarray(piece.equity, dtype=np.float64) * scale
        equity.append(curve)
        times.append(np.asarray(piece.times))
        trades += [replace(t, size=t.size * scale, pnl=t.pnl * scale,
                           entry_fee=t.entry_fee * scale, exit_fee=t.exit_fee * scale)
                   for t in piece.trades]
        exposed += round(piece.metrics["exposure_pct"] / 100 * len(curve))
        capital = float(curve[-1])
    curve = np.concatenate(equity)
    stamps = np.concatenate(times)
    index = np.searchsorted(ds.candles.timestamp, stamps)
    closes = ds.candles.close[index]
    metrics = compute_metrics(trades, curve, stamps, ds.timeframe, ds.balance, closes,
                              exposed).to_dict()
    chart = None
    if request.charts:
        from engine.research.charts import render_walkforward

        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        folder = Path(settings.out_dir) / "walkforward" / \
            f"{ds.strategy}_{ds.symbol.replace('/', '-')}_{ds.timeframe}_{stamp}"
        chart = render_walkforward(stamps, curve, [f.fold.test_start for f in results
                                                   if f.out_of_sample],
                                   ds.balance, folder / "walkforward.png",
                                   title=f"{ds.strategy} {ds.symbol} {ds.timeframe} · "
                                         "walk-forward", theme=settings.chart_theme)
    return metrics, chart


def walkforward_summary(report: WalkForwardReport) -> str:
    """The table ``paperbot walkforward`` prints."""
    lines = [f"walk-forward {'anchored' if report.anchored else 'rolling'} · {report.strategy} "
             f"on {report.symbol} {report.timeframe} ({report.exchange}) · space "
             f"{report.space} · objective {report.objective} · {report.executor}", "",
             f"  {'fold':>4}  {'train':<23}  {'test':<23}  {'IS ' + report.objective:>10}  "
             f"{'IS ret %':>9}  {'OOS ' + report.objective:>11}  {'OOS ret %':>9}  "
             f"{'trades':>6}  params"]
    for k, f in enumerate(report.folds, 1):
        fo = f.fold
        ins, oos = f.in_sample or {}, f.out_of_sample or {}
        searched = {part.split("=")[0] for part in report.space.split()}
        params = " ".join(f"{n}={v}" for n, v in (f.params or {}).items() if n in searched)
        lines.append(
            f"  {k:>4}  {fmt.iso(fo.train_start)[:10]} → {fmt.iso(fo.train_end)[:10]}  "
            f"{fmt.iso(fo.test_start)[:10]} → {fmt.iso(fo.test_end)[:10]}  "
            f"{_num(f.in_value):>10}  {_num(ins.get('total_return_pct')):>9}  "
            f"{_num(f.out_value):>11}  {_num(oos.get('total_return_pct')):>9}  "
            f"{oos.get('num_trades', '—'):>6}  {params or f.note}")
    lines.append("")
    if report.overall:
        m = report.overall
        lines.append(f"out-of-sample: return {fmt.pct(m['total_return_pct'])} · max drawdown "
                     f"{fmt.pct(m['max_drawdown_pct'])} · Sharpe {fmt.number(m['sharpe'])} · "
                     f"trades {m['num_trades']} · final equity "
                     f"{fmt.number(m['final_equity'])}")
    eff = "—" if report.efficiency is None else f"{report.efficiency:.2f}"
    lines.append(f"walk-forward efficiency: {eff} (out-of-sample / in-sample return per day)")
    if report.chart:
        lines.append(f"chart: {report.chart}")
    lines += [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def _num(value: Any) -> str:
    return "—" if value is None else f"{float(value):.4g}"
