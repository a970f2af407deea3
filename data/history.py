"""Historical candles through ccxt: paginated ``fetch_ohlcv`` with retry and backoff.

Works with any async ccxt exchange (``data.exchanges.make_exchange``) or an object with the same
``fetch_ohlcv(symbol, timeframe, since, limit, params)`` coroutine. Each request asks for one
window ``[since, since + limit × timeframe)`` (``params["until"]``), which makes exchanges that
answer newest-first (Bybit) return the right candles. Only closed candles are kept, and only
plausible ones (``data.live.sanity.valid_rows``: finite, > 0, low ≤ open/close ≤ high, on the
timeframe's grid); dropped rows are logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from data import ccxt_lazy
from data.live.sanity import valid_rows
from data.ohlcv import OHLCV
from data.timeframes import timeframe_ms

log = logging.getLogger(__name__)

#: Errors worth retrying: rate limits (a subclass of DDoSProtection in ccxt) and network trouble.
_ERRORS = ccxt_lazy.errors()  # ccxt's error classes, without every exchange module
RETRYABLE: tuple[type[BaseException], ...] = (_ERRORS.NetworkError, _ERRORS.RateLimitExceeded)


class FetchError(RuntimeError):
    """Candles could not be fetched; the message names the exchange, symbol and the cause."""


async def call_with_retry(call: Callable[[], Awaitable[Any]], *, what: str,
                          max_retries: int = 5, base_delay: float = 1.0,
                          max_delay: float = 30.0,
                          sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> Any:
    """Await ``call()``, retrying rate-limit and network errors with exponential backoff.

    The n-th retry waits ``min(max_delay, base_delay × 2^n)`` seconds plus up to 25 % jitter.

    Raises:
        FetchError: after ``max_retries`` retries, or at once for a non-retryable ccxt error.
    """
    for attempt in range(max_retries + 1):
        try:
            return await call()
        except RETRYABLE as exc:
            if attempt == max_retries:
                tries = f"gave up after {max_retries} retries: " if max_retries else ""
                raise FetchError(f"{what}: {tries}{exc}") from exc
            delay = min(max_delay, base_delay * 2**attempt)
            delay += random.uniform(0, delay / 4)
            log.warning("%s: %s; retry %d/%d in %.1fs", what, type(exc).__name__,
                        attempt + 1, max_retries, delay)
            await sleep(delay)
        except _ERRORS.BaseError as exc:
            raise FetchError(f"{what}: {type(exc).__name__}: {exc}") from exc
    raise AssertionError("unreachable")


async def fetch_ohlcv_range(exchange: Any, symbol: str, timeframe: str, since: int, until: int,
                            *, limit: int = 1000, now_ms: int | None = None,
                            retry: dict[str, Any] | None = None,
                            on_batch: Callable[[int, int], None] | None = None) -> OHLCV:
    """Closed candles with open time in ``[since, until)`` from ``exchange``, oldest first.

    Args:
        exchange: async ccxt exchange (markets are loaded by ccxt on the first call).
        symbol, timeframe: unified symbol and ccxt timeframe.
        since, until: ms UTC; ``since`` is floored to the timeframe grid.
        limit: candles per request (exchange maximum: Binance 1000, Bybit 1000).
        now_ms: current time (for the closed-candle cut-off); defaults to the wall clock.
        retry: keyword arguments for ``call_with_retry``.
        on_batch: called with (candles so far, cursor ms) after each request.

    Returns:
        The plausible candles, deduplicated and sorted by open time.

    Raises:
        FetchError: when a request fails after its retries.
    """
    step = timeframe_ms(timeframe)
    since -= since % step
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    until = min(until, now_ms - now_ms % step)  # the candle still open is not fetched
    tables: list[np.ndarray] = []  # one (n, 6) array per page: compact while pages add up
    fetched = 0
    cursor = since
    # each request moves the cursor forward by at least one candle: this bounds the loop
    for _ in range(max(0, (until - since) // step) + 1):
        if cursor >= until:
            break
        window_end = min(until, cursor + limit * step) - 1
        batch = await call_with_retry(
            lambda c=cursor, e=window_end: exchange.fetch_ohlcv(
                symbol, timeframe, since=c, limit=limit, params={"until": e}),
            what=f"{getattr(exchange, 'id', 'exchange')} {symbol} {timeframe}",
            **(retry or {}),
        )
        batch = [r for r in (batch or []) if cursor <= r[0] < until]
        if batch:
            tables.append(np.asarray([r[:6] for r in batch], dtype=np.float64))
            fetched += len(batch)
            cursor = max(int(batch[-1][0]) + step, cursor + step)
        else:
            cursor = window_end + 1  # an empty window (outage, before listing): skip it
        if on_batch is not None:
            on_batch(fetched, cursor)
    if not tables:
        return OHLCV.empty()
    table = np.concatenate(tables)
    valid = valid_rows(table, timeframe)  # finite, > 0, low ≤ open/close ≤ high, on the grid
    if not valid.all():
        bad = table[~valid]
        log.warning("%s %s %s: dropping %d implausible candle rows (first: %s)",
                    getattr(exchange, "id", "exchange"), symbol, timeframe, len(bad),
                    bad[0].tolist())
        table = table[valid]
    # one row per open time, the last one received winning, sorted
    ts = table[:, 0].astype(np.int64)
    _, last = np.unique(ts[::-1], return_index=True)
    keep = len(ts) - 1 - last
    table, ts = table[keep], ts[keep]
    return OHLCV(ts, *(np.ascontiguousarray(table[:, k]) for k in range(1, 6)))
