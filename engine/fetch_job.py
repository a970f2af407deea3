"""Fetching the candles a backtest lacks, as a job of the pool (off the event loop, and out of
the long-running process: reading and writing the Parquet cache imports pandas)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from data.history import FetchError
from engine.errors import ServiceError, scrub_secrets
from engine.reporting import iso
from engine.settings import Settings


def fetch_into_cache(settings: Settings, exchange: str, symbol: str, timeframe: str,
                     start: int, end: int,
                     on_batch: Callable[[int, int], None] | None = None,
                     ) -> tuple[int, str | None]:
    """Fetch what the cache lacks of ``[start, end)`` (ms UTC), blocking; ``on_batch`` gets
    (candles so far, cursor ms) after each request.

    Returns:
        (candles fetched, None), or (0, the failure text without secrets) when the exchange
        could not be reached or refused.
    """
    from data.cache_sync import update_cache
    from data.exchanges import make_exchange

    async def go() -> int:
        client = make_exchange(exchange, rest_url=settings.rest_url_for(exchange),
                               market_type="linear" if ":" in symbol else None)
        try:
            fetched, _ = await update_cache(
                client, settings.data_dir, exchange, symbol, timeframe, start, end,
                retry={"max_retries": 2, "base_delay": 0.5}, on_batch=on_batch)
            return fetched
        finally:
            await client.close()

    try:
        return asyncio.run(go()), None
    except (FetchError, OSError, ValueError) as exc:
        return 0, scrub_secrets(str(exc))


def fetch_candles_job(settings: Settings, exchange: str, symbol: str, timeframe: str,
                      start: int, end: int,
                      progress: Callable[[str], None] | None = None) -> int:
    """Fetch what the cache lacks of ``[start, end)`` (ms UTC); returns candles fetched.

    ``progress`` receives ``"12,000 candles, up to 2025-06-01 08:20"`` after each request.

    Raises:
        ServiceError: the exchange could not be reached or refused (one line, no secrets).
    """
    say = progress or (lambda _text: None)
    fetched, failure = fetch_into_cache(
        settings, exchange, symbol, timeframe, start, end,
        on_batch=lambda n, cursor: say(f"{n:,} candles, up to {iso(cursor)} UTC"))
    if failure is not None:
        raise ServiceError(f"could not fetch {symbol} {timeframe} from {exchange}: "
                           f"{failure}") from None
    return fetched
