"""Open interest and funding rate history through ccxt, paginated, with retry like candles.

* Open interest: ``fetch_open_interest_history(symbol, period, since, limit,
  {"until": …})`` (Bybit v5 ``/v5/market/open-interest``, Binance USDⓈ-M
  ``/futures/data/openInterestHist``). Each request asks for one window of ``limit`` sampling
  periods, so exchanges that answer newest first (Bybit) or oldest first (Binance) both return
  the whole window. The period is the candle timeframe when the exchange samples at it, else
  the longest offered period below it (5m at the finest): ``oi_period_for``. Binance keeps only
  the last 30 days of this history; older windows come back empty.
* Funding: ``fetch_funding_rate_history(symbol, since, limit, {"until": …})`` (Bybit
  ``/v5/market/funding/history``, Binance ``/fapi/v1/fundingRate``), in windows of ``limit``
  hours: no exchange settles more often than hourly, so a window never holds more than a page.

Every request goes through ``data.history.call_with_retry`` (rate limits and network errors
retried with backoff). Only what the store lacks is fetched: open interest spans missing on the
period grid, funding before the first and after the last stored settlement.

The ``fetch_*_range`` functions use numpy only (forward runs may call them to backfill); the
``update_*`` functions write the store (pandas, pyarrow), imported when they run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from data.gaps import missing_spans
from data.history import call_with_retry
from data.perp import FUNDING, OPEN_INTEREST
from data.symbols import perpetual_of
from data.timeframes import HOUR_MS, timeframe_ms

#: Open interest sampling periods offered by both Bybit (intervalTime) and Binance (period).
OI_PERIODS: tuple[str, ...] = ("5m", "15m", "30m", "1h", "4h", "1d")
#: Rows per request (the exchanges' maxima); other exchanges get the smallest.
PAGE_LIMITS: dict[str, dict[str, int]] = {
    OPEN_INTEREST: {"bybit": 200, "binance": 500, "binanceusdm": 500},
    FUNDING: {"bybit": 200, "binance": 1000, "binanceusdm": 1000},
}
_HAS = {OPEN_INTEREST: "fetchOpenInterestHistory", FUNDING: "fetchFundingRateHistory"}


def oi_period_for(timeframe: str) -> str:
    """The open interest period used for ``timeframe`` candles: the longest of
    ``OI_PERIODS`` not longer than it (``1m`` → ``5m``, ``2h`` → ``1h``, ``1w`` → ``1d``)."""
    return pick_oi_period(list(OI_PERIODS), timeframe)


def pick_oi_period(periods: list[str], timeframe: str) -> str | None:
    """The coarsest of ``periods`` not longer than ``timeframe``, else the finest; None when
    there is none."""
    if not periods:
        return None
    step = timeframe_ms(timeframe)
    fitting = [p for p in periods if timeframe_ms(p) <= step]
    key = timeframe_ms
    return max(fitting, key=key) if fitting else min(periods, key=key)


def _check_offered(exchange: Any, kind: str) -> None:
    if not getattr(exchange, "has", {}).get(_HAS[kind]):
        what = "open interest" if kind == OPEN_INTEREST else "funding rate"
        raise NotImplementedError(f"{getattr(exchange, 'id', 'the exchange')} offers no {what} "
                                  "history through ccxt; try bybit or binanceusdm")


async def fetch_open_interest_range(exchange: Any, symbol: str, period: str, since: int,
                                    until: int, *, limit: int | None = None,
                                    now_ms: int | None = None,
                                    retry: dict[str, Any] | None = None) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    """Open interest samples taken in ``[since, until)``, oldest first.

    Args:
        exchange: async ccxt exchange (linear markets).
        symbol: the perpetual, e.g. ``BTC/USDT:USDT``.
        period: sampling period, one of ``OI_PERIODS``.
        since, until: ms UTC; ``since`` is floored to the period grid, ``until`` capped at now.
        limit: samples per request (default ``PAGE_LIMITS``).
        now_ms: the current time; defaults to the wall clock.
        retry: keyword arguments for ``call_with_retry``.

    Returns:
        (sample times, int64 ms UTC; open interest, float64 base units).

    Raises:
        NotImplementedError: the exchange offers no open interest history.
        FetchError: a request failed after its retries.
    """
    _check_offered(exchange, OPEN_INTEREST)
    limit = limit or PAGE_LIMITS[OPEN_INTEREST].get(getattr(exchange, "id", ""), 200)
    step = timeframe_ms(period)
    return await _fetch_windows(
        lambda since_, limit_, end: exchange.fetch_open_interest_history(
            symbol, period, since=since_, limit=limit_, params={"until": end}),
        "openInterestAmount", since - since % step, until, limit, limit * step, now_ms,
        f"{getattr(exchange, 'id', 'exchange')} {symbol} open interest", retry)


async def fetch_funding_range(exchange: Any, symbol: str, since: int, until: int, *,
                              limit: int | None = None, now_ms: int | None = None,
                              retry: dict[str, Any] | None = None) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """Funding settlements in ``[since, until)``, oldest first: (times, int64 ms UTC; rates,
    float64 fractions per interval). Arguments and errors as ``fetch_open_interest_range``."""
    _check_offered(exchange, FUNDING)
    limit = limit or PAGE_LIMITS[FUNDING].get(getattr(exchange, "id", ""), 200)
    return await _fetch_windows(
        lambda since_, limit_, end: exchange.fetch_funding_rate_history(
            symbol, since=since_, limit=limit_, params={"until": end}),
        "fundingRate", since, until, limit, limit * HOUR_MS, now_ms,
        f"{getattr(exchange, 'id', 'exchange')} {symbol} funding rates", retry)


async def _fetch_windows(call: Any, field: str, since: int, until: int, limit: int,
                         window: int, now_ms: int | None, what: str,
                         retry: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """``call(since, limit, end)`` once per ``window`` ms of ``[since, min(until, now])``
    (bounded: one request per window, with ``call_with_retry``); the rows' ``field`` by
    ``timestamp`` inside each window, as (sorted int64 times, float64 values)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    until = min(until, now_ms + 1)
    values: dict[int, float] = {}
    for cursor in range(since, until, window):
        end = min(until, cursor + window) - 1
        batch = await call_with_retry(lambda c=cursor, e=end: call(c, limit, e), what=what,
                                      **(retry or {}))
        for row in batch or []:
            ts, value = row.get("timestamp"), row.get(field)
            if ts is not None and value is not None and cursor <= int(ts) <= end:
                values[int(ts)] = float(value)
    ts = np.array(sorted(values), dtype=np.int64)
    return ts, np.array([values[t] for t in ts.tolist()], dtype=np.float64)


async def update_open_interest(exchange: Any, data_dir: Path, exchange_id: str, symbol: str,
                               timeframe: str, start: int, end: int,
                               **kwargs: Any) -> tuple[int, Path]:
    """Fetch the open interest samples of ``[start, end)`` the store lacks and merge them in.

    The period is ``oi_period_for(timeframe)``; ``kwargs`` go to
    ``fetch_open_interest_range``. Returns (samples fetched, file path).

    Raises:
        NotImplementedError, FetchError: see ``fetch_open_interest_range``; the missing spans
            fetched before a failure are kept.
    """
    from data.perp_store import merge_series, oi_path, read_series

    symbol = perpetual_of(symbol)
    period = oi_period_for(timeframe)
    path = oi_path(data_dir, exchange_id, symbol, period)
    stored, _ = read_series(path, OPEN_INTEREST, start, end)
    now_ms = kwargs.get("now_ms") or int(time.time() * 1000)
    fetched = 0
    for lo, hi in missing_spans(stored, period, start, min(end, now_ms + 1)):
        ts, values = await fetch_open_interest_range(exchange, symbol, period, lo, hi, **kwargs)
        if len(ts):
            merge_series(path, OPEN_INTEREST, ts, values)
            fetched += len(ts)
    return fetched, path


async def update_funding(exchange: Any, data_dir: Path, exchange_id: str, symbol: str,
                         start: int, end: int, **kwargs: Any) -> tuple[int, Path]:
    """Fetch the funding settlements of ``[start, end)`` before the first and after the last
    stored one and merge them in. Returns (rates fetched, file path).

    Raises:
        NotImplementedError, FetchError: see ``fetch_funding_range``.
    """
    from data.perp_store import funding_path, merge_series, read_series

    symbol = perpetual_of(symbol)
    path = funding_path(data_dir, exchange_id, symbol)
    stored, _ = read_series(path, FUNDING)
    spans = [(start, end)]
    if len(stored):
        spans = [(start, min(end, int(stored[0]))), (max(start, int(stored[-1]) + 1), end)]
    fetched = 0
    for lo, hi in spans:
        if lo >= hi:
            continue
        ts, rates = await fetch_funding_range(exchange, symbol, lo, hi, **kwargs)
        if len(ts):
            merge_series(path, FUNDING, ts, rates)
            fetched += len(ts)
    return fetched, path
