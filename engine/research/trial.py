"""One trial on a worker: a backtest of given parameters over a slice of a shipped data set.

A ``Dataset`` (candles, drill-down candles, fees, balance, strategy name) is sent to each
worker once: into a process pool worker by its initializer, onto Dask workers by
``Client.scatter(…, broadcast=True)``. A ``TrialSpec`` is small (parameters and an index
range), so a trial costs no data transfer. Indicators are shared between the trials a worker
runs through a per-process ``IndicatorCache`` keyed by the data set and the slice.

Only numpy and the engine are imported here: workers never load pandas, Optuna or Dask's
dataframe machinery for a trial.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.ohlcv import OHLCV
from engine.fills import FillModel
from engine.indicator_cache import IndicatorCache


@dataclass(frozen=True, slots=True)
class Dataset:
    """Everything a worker needs besides the parameters; shipped once per worker.

    Attributes:
        key: unique id of this data set (cache keys, worker lookup).
        strategy: strategy name; ``strategy_dir`` the extra folder of user strategies.
        symbol, timeframe, exchange: what the candles are.
        candles: base candles, warm-up history included.
        lower: drill-down candles by timeframe (only those cached), over the same span.
        fills: fees and slippage; ``balance`` the starting balance (quote).
    """

    key: str
    strategy: str
    strategy_dir: Path | None
    symbol: str
    timeframe: str
    exchange: str
    candles: OHLCV
    lower: dict[str, OHLCV] = field(default_factory=dict)
    fills: FillModel = field(default_factory=FillModel)
    balance: float = 10_000.0


@dataclass(frozen=True, slots=True)
class TrialSpec:
    """One backtest to run: ``params`` over ``candles[lo:hi]``, trading from ``trade_start``.

    ``number`` is the Optuna trial number (or any id the caller matches results with);
    ``trade_start`` is an open time, ms UTC; ``trades`` asks for the closed trades back.
    """

    number: int
    params: dict[str, Any]
    lo: int
    hi: int
    trade_start: int
    trades: bool = False


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    """What a trial gave: metrics (``engine.metrics.Metrics.to_dict``) or an error text."""

    number: int
    metrics: dict[str, Any] | None
    error: str | None = None
    seconds: float = 0.0
    trades: list[Any] | None = None
    equity: Any = None
    times: Any = None


_CACHE = IndicatorCache()
#: strategy classes by (name, folder): a user strategy file is loaded once per worker, so its
#: indicator functions stay the same objects and their values can be shared
_CLASSES: dict[tuple[str, Path | None], Any] = {}


def build(dataset: Dataset, params: dict[str, Any]) -> Any:
    """A fresh strategy of the data set's kind with ``params``.

    Raises:
        ServiceError / ParamError: unknown strategy, refused parameters.
    """
    from engine.registry import check_warmup, get_strategy

    key = (dataset.strategy, dataset.strategy_dir)
    cls = _CLASSES.get(key)
    if cls is None:
        cls = _CLASSES[key] = get_strategy(dataset.strategy, dataset.strategy_dir).cls
    strategy = cls(params, timeframe=dataset.timeframe)
    check_warmup(strategy, dataset.strategy, params)
    return strategy


def lower_source(dataset: Dataset):
    """The drill-down source over the shipped lower candles (``engine.drilldown.LowerSource``)."""

    def source(timeframe: str, start: int, end: int) -> OHLCV | None:
        candles = dataset.lower.get(timeframe)
        return None if candles is None else candles.between(start, end)

    return source


def run_trial(dataset: Dataset, spec: TrialSpec) -> TrialOutcome:
    """Backtest ``spec.params`` on the data set; never raises (errors become the outcome)."""
    from engine.backtest import BacktestConfig, run_backtest

    started = time.perf_counter()
    try:
        strategy = build(dataset, spec.params)
        config = BacktestConfig(dataset.symbol, dataset.timeframe, dataset.balance,
                                dataset.fills, trade_start=spec.trade_start,
                                exchange=dataset.exchange)
        candles = dataset.candles.take(slice(spec.lo, spec.hi))
        result = run_backtest(strategy, candles, config,
                              lower_source(dataset) if dataset.lower else None,
                              cache=_CACHE, cache_key=(dataset.key, spec.lo, spec.hi))
    except Exception as exc:  # a failing trial must not take the study down
        text = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, ValueError | LookupError):
            text += " | " + traceback.format_exc(limit=3).strip().splitlines()[-1]
        return TrialOutcome(spec.number, None, text, time.perf_counter() - started)
    return TrialOutcome(spec.number, result.metrics.to_dict(), None,
                        time.perf_counter() - started,
                        list(result.trades) if spec.trades else None,
                        result.equity if spec.trades else None,
                        result.candles.timestamp if spec.trades else None)


# ---- process pool workers: the data set arrives once, through the initializer ----------------
_DATASET: Dataset | None = None


def init_worker(dataset: Dataset, parent_pid: int) -> None:
    """Process pool initializer: keep ``dataset``; die with the coordinator."""
    global _DATASET
    from engine.workers import die_with_parent

    _DATASET = dataset
    die_with_parent(parent_pid)


def run_pooled(spec: TrialSpec) -> TrialOutcome:
    """``run_trial`` on the data set this worker received at start."""
    if _DATASET is None:
        raise RuntimeError("worker has no data set")
    return run_trial(_DATASET, spec)


def run_pooled_batch(specs: list[TrialSpec]) -> list[TrialOutcome]:
    """``run_pooled`` on each of ``specs`` in turn (short trials travel in batches: one pool
    round trip for several trials, ``engine.research.executor.LocalExecutor``)."""
    return [run_pooled(spec) for spec in specs]
