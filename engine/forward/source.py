"""Closed candles over REST for forward runs: warm-up history and backfills, via ccxt."""

from __future__ import annotations

import time
from typing import Any

from data.history import FetchError, call_with_retry, fetch_ohlcv_range
from data.ohlcv import OHLCV
from data.timeframes import timeframe_ms


class CcxtCandleSource:
    """REST access to one exchange (one market type) for forward runs.

    Args:
        exchange: an async ccxt exchange (``data.exchanges.make_exchange``), owned by this
            object and closed by ``close``.
        retry: keyword arguments for ``data.history.call_with_retry``.
    """

    def __init__(self, exchange: Any, retry: dict[str, Any] | None = None) -> None:
        self.exchange = exchange
        self.retry = retry or {}
        self._markets: dict[str, Any] | None = None

    @property
    def exchange_id(self) -> str:
        """ccxt id of the exchange."""
        return str(self.exchange.id)

    async def server_time(self) -> int:
        """The exchange's clock, ms UTC (falls back to the local clock if it has no endpoint).

        Raises:
            FetchError: the exchange cannot be reached.
        """
        if not self.exchange.has.get("fetchTime"):
            return int(time.time() * 1000)
        return int(await call_with_retry(self.exchange.fetch_time, what=f"{self.exchange_id} "
                                         "time", **self.retry))

    async def probe(self) -> int:
        """One request to the exchange, without retries: is it reachable now? Returns its
        clock (ms UTC; the local clock for an exchange without a time endpoint).

        Raises:
            FetchError: it is not (network error, maintenance, rate limit).
        """
        if not self.exchange.has.get("fetchTime"):
            await call_with_retry(self.exchange.load_markets, what=f"{self.exchange_id} (probe)",
                                  max_retries=0)
            return int(time.time() * 1000)
        return int(await call_with_retry(self.exchange.fetch_time,
                                         what=f"{self.exchange_id} (probe)", max_retries=0))

    async def markets(self) -> dict[str, Any]:
        """The exchange's markets by unified symbol (loaded once).

        Raises:
            FetchError: the exchange cannot be reached.
        """
        if self._markets is None:
            self._markets = await call_with_retry(self.exchange.load_markets,
                                                  what=f"{self.exchange_id} markets",
                                                  **self.retry)
        return self._markets

    def loaded_markets(self) -> list[str]:
        """Symbols of the markets loaded so far (empty before ``markets()``)."""
        return sorted(self._markets or {})

    async def fetch(self, symbol: str, timeframe: str, since: int, until: int,
                    now: int | None = None) -> OHLCV:
        """Closed candles with open time in ``[since, until)``.

        Raises:
            FetchError: after the retries.
        """
        if until <= since:
            return OHLCV.empty()
        now = await self.server_time() if now is None else now
        return await fetch_ohlcv_range(self.exchange, symbol, timeframe, since, until,
                                       now_ms=now, retry=self.retry)

    async def latest(self, symbol: str, timeframe: str, count: int) -> tuple[OHLCV, int]:
        """The newest ``count`` closed candles and the exchange time they were cut at.

        Raises:
            FetchError: after the retries.
        """
        now = await self.server_time()
        step = timeframe_ms(timeframe)
        end = now - now % step  # the open time of the candle still forming
        return await self.fetch(symbol, timeframe, end - count * step, end, now=now), now

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.exchange.close()


__all__ = ["CcxtCandleSource", "FetchError"]
