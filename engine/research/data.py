"""The candles of a study: validated like a backtest request, loaded once into a ``Dataset``.

Every trial of a study trades the same span, from the same first candle, so their metrics
compare: the warm-up loaded before the span is the largest any point of the search space
needs (checked at the space's corners and the defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from data.loader import CandleLoader, MissingDataError
from data.timeframes import lower_timeframes, timeframe_ms
from engine.backtest_request import BacktestRequest, check_request, date_range, request_fills
from engine.errors import ServiceError
from engine.reporting import iso
from engine.research.executor import new_dataset_key
from engine.research.space import ParamRange
from engine.research.trial import Dataset
from engine.settings import Settings
from engine.strategy import MAX_WARMUP_CANDLES, ParamError, Strategy

#: Drill-down candles shipped with a study at most (more: the finest timeframes are left out
#: and their ambiguous candles fall back to the conservative stop-loss).
MAX_LOWER_CANDLES = 1_500_000


@dataclass(frozen=True, slots=True)
class StudyData:
    """A loaded data set and where trading starts in it.

    ``first`` is the index of the first traded candle (``candles[:first]`` is warm-up);
    ``warnings`` says what was left out.
    """

    dataset: Dataset
    first: int
    warmup: int
    source: str
    warnings: tuple[str, ...] = ()


def space_warmup(strategy: Strategy, space: dict[str, ParamRange]) -> int:
    """The largest warm-up over the defaults and the low/high corners of ``space``."""
    cls = type(strategy)
    base = strategy.timeframes[0]
    best = strategy.warmup_candles()
    for corner in ("low", "high"):
        params = dict(strategy.params)
        for name, r in space.items():
            if r.kind == "choice":
                continue
            value = getattr(r, corner)
            params[name] = int(value) if r.kind == "int" else float(value)
        try:
            best = max(best, cls(params, timeframe=base).warmup_candles())
        except (ParamError, ValueError, TypeError):
            continue
    return min(best, MAX_WARMUP_CANDLES)


def load_study_data(request: BacktestRequest, settings: Settings,
                    space: dict[str, ParamRange]) -> StudyData:
    """Validate ``request`` (strategy, symbol, timeframe, dates, fees) and load its candles.

    Raises:
        ServiceError: bad input, or no candles for the span.
    """
    strategy, timeframe, symbol, exchange = check_request(request, settings)
    start, end = date_range(request.start, request.end)
    step = timeframe_ms(timeframe)
    warmup = space_warmup(strategy, space)
    loader = CandleLoader(settings.data_dir)
    load_from = None if start is None else start - warmup * step
    try:
        candles, source = loader.load(exchange, symbol, timeframe, load_from, end)
    except MissingDataError as exc:
        raise ServiceError(str(exc)) from None
    n = len(candles)
    first = warmup if start is None else int(np.searchsorted(candles.timestamp, start))
    if n == 0 or first >= n - 1:
        raise ServiceError(
            f"not enough {symbol} {timeframe} candles for {exchange} between "
            f"{iso(start) or 'the start'} and {iso(end) or 'now'}: {n:,} candles, and the "
            f"search space needs {warmup:,} of warm-up; widen the dates or the cache")
    lower: dict[str, Any] = {}
    total, notes = 0, []
    span = (int(candles.timestamp[0]), int(candles.timestamp[-1]) + step)
    for tf in lower_timeframes(timeframe):
        try:
            part, _ = loader.load(exchange, symbol, tf, *span)
        except MissingDataError:
            continue
        if not len(part):
            continue
        if total + len(part) > MAX_LOWER_CANDLES:
            notes.append(f"drill-down below {tf} left out of the study (too many candles); "
                         "candles holding both stop-loss and take-profit there count as "
                         "stop-loss")
            break
        lower[tf] = part
        total += len(part)
    fills = request_fills(request, settings)
    balance = settings.balance if request.balance is None else request.balance
    dataset = Dataset(new_dataset_key(), request.strategy, settings.strategy_dir, symbol,
                      timeframe, exchange, candles, lower, fills, balance)
    return StudyData(dataset, first, warmup, f"{source.path.name} ({source.timeframe})",
                     tuple(notes))
