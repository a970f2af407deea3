"""One backtest as a job: validate the request, load (or fetch) candles, run, write charts.

``run_backtest_job`` is synchronous and CPU-bound; the service runs it off the event loop.
Everything user-facing that can go wrong raises ``ServiceError`` with a message that says what
is wrong and what is valid.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from data.loader import CandleLoader, MissingDataError, Source
from data.ohlcv import OHLCV
from data.perp import PerpInputs
from data.symbols import is_perpetual
from data.timeframes import TimeframeError, timeframe_ms
from engine.backtest import BacktestConfig, BacktestResult, NotEnoughData, run_backtest
from engine.backtest_charts import draw_backtest_charts
from engine.backtest_request import (
    BacktestReport,
    BacktestRequest,
    check_request,
    date_range,
    request_fills,
    request_leverage,
    request_protections,
)
from engine.errors import MissingCandles, ServiceError
from engine.fetch_job import fetch_into_cache
from engine.perp.leverage import margin_rules
from engine.reporting import iso, write_exits_csv, write_trades_csv
from engine.settings import Settings
from engine.strategy_errors import describe, strategy_file, where

log = logging.getLogger(__name__)

#: Days of candles offered for a backtest without dates whose candles are not cached.
DEFAULT_FETCH_DAYS = {"1m": 30, "5m": 90, "15m": 180, "30m": 180}


def _fetch_missing(settings: Settings, exchange: str, symbol: str, timeframe: str,
                   start: int, end: int) -> str | None:
    """Try to fetch what the cache lacks; returns the failure text or None."""
    return fetch_into_cache(settings, exchange, symbol, timeframe, start, end)[1]


def run_backtest_job(request: BacktestRequest, settings: Settings,
                     progress: Callable[[str], None] | None = None) -> BacktestReport:
    """Run one backtest end to end (blocking). See the module docstring.

    ``progress`` receives short texts ("loading candles", "simulating 40 %", "drawing charts").

    Raises:
        ServiceError: bad strategy/symbol/timeframe/date/params/balance/fees, missing candles,
            or an output folder that cannot be written.
    """
    started = time.perf_counter()
    say = progress or (lambda _text: None)
    strategy, timeframe, symbol, exchange = check_request(request, settings)
    if request.charts:  # refuse an unwritable folder before the work, not after
        _writable(Path(request.out_dir or settings.out_dir))
    start, end = date_range(request.start, request.end)
    step = timeframe_ms(timeframe)
    load_from = None if start is None else start - strategy.warmup_candles() * step
    loader = CandleLoader(settings.data_dir)
    warnings: list[str] = []
    say("loading candles")
    fetch_note = None
    if start is not None and not settings.offline and request.fetch_missing:
        fetch_end = end if end is not None else int(time.time() * 1000)
        if not _covered(loader, exchange, symbol, timeframe, load_from, fetch_end):
            fetch_note = _fetch_missing(settings, exchange, symbol, timeframe, load_from,
                                        fetch_end)
    missing = missing_span(timeframe, load_from, end)
    try:
        candles, source = loader.load(exchange, symbol, timeframe, load_from, end)
    except MissingDataError as exc:
        raise MissingCandles(str(exc) + (f" (fetch failed: {fetch_note})" if fetch_note else ""),
                             exchange=exchange, symbol=symbol, timeframe=timeframe,
                             start=missing[0], end=missing[1], offline=settings.offline) \
            from None
    if len(candles) == 0:
        raise MissingCandles(
            f"no {symbol} {timeframe} candles for {exchange} between "
            f"{iso(start) or 'the start'} and {iso(end) or 'now'}; the cache "
            f"({source.path.name}) spans {iso(source.first)} to {iso(source.last)}"
            + (f"; fetching failed: {fetch_note}" if fetch_note else ""),
            exchange=exchange, symbol=symbol, timeframe=timeframe, start=missing[0],
            end=missing[1], offline=settings.offline)
    first, last = int(candles.timestamp[0]), int(candles.timestamp[-1])
    if start is not None and first > start:
        warnings.append(f"candles start at {iso(first)}, after the requested {iso(start)}")
    if end is not None and last + step < end:
        warnings.append(f"candles end at {iso(last + step)}, before the requested {iso(end)}")
    if fetch_note:
        warnings.append(f"could not fetch missing candles: {fetch_note}")

    fills = request_fills(request, settings)
    margin = margin_rules(request_leverage(request, exchange, symbol), exchange, symbol)
    config = BacktestConfig(symbol=symbol, timeframe=timeframe,
                            balance=(settings.balance if request.balance is None
                                     else request.balance), fills=fills,
                            leverage=margin.leverage,
                            maintenance_margin_rate=margin.maintenance_margin_rate,
                            trade_start=start, exchange=exchange,
                            protections=request_protections(request, strategy, settings))
    lower = loader.lower_source(exchange, symbol, first, last + step)
    perp, funding = _perp_inputs(settings, exchange, symbol, timeframe, candles, source,
                                 warnings)
    try:
        result = run_backtest(strategy, candles, config, lower,
                              progress=lambda done: say(f"simulating {len(candles):,} candles: "
                                                        f"{done:.0%}"), lookahead=True,
                              perp=perp, funding=funding)
    except (NotEnoughData, TimeframeError) as exc:
        raise ServiceError(str(exc)) from None
    except Exception as exc:
        if where(exc, strategy).split(":")[0] != Path(strategy_file(strategy) or "").name:
            raise  # not raised by the strategy's own code: a bug, with its traceback
        error = ServiceError(describe(exc, strategy, request.strategy))
        error.traceback_text = "".join(traceback.format_exception(exc))  # --traceback
        raise error from None

    warnings.extend(finding.describe() for finding in result.lookahead)
    charts: dict[str, Path] = {}
    csv_path = json_path = None
    out = None
    try:
        if request.charts:
            say("drawing charts")
            out = _out_dir(request, settings, result)
            charts.update(draw_backtest_charts(result, strategy, out, settings.chart_theme))
            csv_path = write_trades_csv(result.trades, out / "trades.csv")
            write_exits_csv(result.exits, out / "exits.csv")
            json_path = out / "backtest.json"
        report = BacktestReport(result, charts, csv_path, json_path, warnings,
                                f"{source.path.name} ({source.timeframe})",
                                time.perf_counter() - started)
        if json_path is not None:
            json_path.write_text(json.dumps(report.to_json(), indent=1, allow_nan=False))
    except OSError as exc:
        folder = out or request.out_dir or settings.out_dir
        raise ServiceError(f"cannot write the charts and files to {folder}: "
                           f"{exc.strerror or exc}; choose another folder with --out "
                           "(or PAPERBOT_OUT_DIR)") from None
    return report


def _perp_inputs(settings: Settings, exchange: str, symbol: str, timeframe: str,
                 candles: OHLCV, source: Source, warnings: list[str]
                 ) -> tuple[PerpInputs, tuple[np.ndarray, np.ndarray] | None]:
    """Open interest, funding rates and taker volume for ``candles`` (``data.perp_load``),
    with what forward runs saw where the run database recorded it
    (``engine.store.perp_inputs``), and the funding settlements to pay (None on spot or when
    none is stored). A perpetual without them gets a warning naming what is missing."""
    from data.perp_load import load_perp_inputs

    loaded = load_perp_inputs(settings.data_dir, exchange, symbol, timeframe, candles, source)
    if not is_perpetual(exchange, symbol) or not len(candles):
        return loaded.inputs, None
    inputs, recorded_candles = loaded.inputs, 0
    settled = dict(zip(*(a.tolist() for a in loaded.settlements), strict=True))
    step = timeframe_ms(timeframe)
    recorded = _recorded(settings, exchange, symbol, timeframe,
                         int(candles.timestamp[0]), int(candles.timestamp[-1]) + step,
                         warnings)
    if recorded is not None:
        oi, rates = inputs.open_interest.copy(), inputs.funding_rate.copy()
        idx = np.searchsorted(candles.timestamp, recorded.ts)
        hit = idx < len(candles)
        hit[hit] = candles.timestamp[idx[hit]] == recorded.ts[hit]
        oi[idx[hit]] = recorded.open_interest[hit]
        rates[idx[hit]] = recorded.funding_rate[hit]
        inputs = PerpInputs(oi, rates, inputs.taker_buy_volume)
        recorded_candles = int(hit.sum())
        settled.update(zip(recorded.settle_ts.tolist(), recorded.rates.tolist(), strict=True))
        if recorded_candles:
            warnings.append(f"open interest and funding of {recorded_candles:,} candles as "
                            f"forward runs saw them ({Path(settings.db_path).name})")
    missing = [name for name, path in (("open interest", loaded.open_interest),
                                       ("funding rates", loaded.funding)) if path is None]
    if missing and recorded_candles < len(candles):
        warnings.append(f"no {' or '.join(missing)} stored for {symbol} on {exchange}: "
                        "strategies see NaN; fetch with `paperbot data fetch --open-interest "
                        "--funding`")
    if not settled:
        return inputs, None
    times = np.array(sorted(settled), dtype=np.int64)
    return inputs, (times, np.array([settled[t] for t in times.tolist()], dtype=np.float64))


def _recorded(settings: Settings, exchange: str, symbol: str, timeframe: str, start: int,
              end: int, warnings: list[str]):
    """``engine.store.perp_inputs.load_recorded`` of the run database, or None (a database
    that cannot be read is a warning, not a failure)."""
    import sqlite3

    from engine.store.perp_inputs import load_recorded

    try:
        return load_recorded(Path(settings.db_path), exchange, symbol, timeframe, start, end)
    except sqlite3.Error as exc:
        warnings.append(f"could not read what forward runs recorded in {settings.db_path}: "
                        f"{exc}")
        return None


def missing_span(timeframe: str, start: int | None, end: int | None) -> tuple[int, int]:
    """The span (ms UTC) to fetch for a backtest of ``[start, end)`` (warm-up included in
    ``start``): without dates, the last ``DEFAULT_FETCH_DAYS`` for the timeframe."""
    now = int(time.time() * 1000)
    hi = min(end, now) if end is not None else now
    if start is not None:
        return start, hi
    days = DEFAULT_FETCH_DAYS.get(timeframe, 365 if timeframe_ms(timeframe) >= 3_600_000
                                  else 90)
    return hi - days * 86_400_000, hi


def _covered(loader: CandleLoader, exchange: str, symbol: str, timeframe: str, start: int,
             end: int) -> bool:
    try:
        src = loader.pick_source(exchange, symbol, timeframe, start, end)
    except MissingDataError:
        return False
    step = timeframe_ms(timeframe)
    return src.first <= start + step and src.last + 2 * step >= min(end, int(time.time() * 1000))


def _writable(folder: Path) -> None:
    """Create ``folder`` if needed and check that a file can be written in it.

    Raises:
        ServiceError: naming the folder and why it cannot be written.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ServiceError(f"cannot write to the output folder {folder}: "
                           f"{exc.strerror or exc}; choose another with --out "
                           "(or PAPERBOT_OUT_DIR)") from None


def _out_dir(request: BacktestRequest, settings: Settings, result: BacktestResult) -> Path:
    base = request.out_dir or settings.out_dir
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    name = f"{result.strategy}_{result.config.symbol.replace('/', '-')}_" \
           f"{result.config.timeframe}_{stamp}"
    path = Path(base) / name
    path.mkdir(parents=True, exist_ok=True)
    return path
