"""The application service: the one API that the CLI and the Discord bot call.

Methods are async, return plain dataclasses and raise ``ServiceError`` with text meant for the
trader. CPU-heavy work (backtests, charts) runs in a worker (``executor``), never on the event
loop, so the Discord gateway keeps its heartbeat during a long backtest.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.cache import CacheEntry, SymbolError, list_cache, normalize_symbol
from data.frames import CandleDataError
from data.history import FetchError, update_cache
from data.importer import import_file
from data.timeframes import TimeframeError, timeframe_ms
from engine.backtest_job import BacktestReport, BacktestRequest, date_range, run_backtest_job
from engine.errors import ServiceError
from engine.registry import StrategyInfo, UnknownStrategyError, discover, get_strategy
from engine.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FetchReport:
    """Result of ``fetch_candles``: candles added and the cache file."""

    fetched: int
    path: Path


class PaperService:
    """Backtests, market data and (with ``engine.forward``) forward runs behind one API.

    Args:
        settings: validated settings.
        executor: where CPU-heavy jobs run; None uses the loop's default thread pool.
    """

    def __init__(self, settings: Settings, executor: Executor | None = None) -> None:
        self.settings = settings
        self.executor = executor

    # ---- strategies -----------------------------------------------------------------------
    def strategies(self) -> list[StrategyInfo]:
        """Every discovered strategy, sorted by name."""
        return list(discover(self.settings.strategy_dir).values())

    def strategy(self, name: str) -> StrategyInfo:
        """One strategy by name.

        Raises:
            ServiceError: unknown name; the message lists the available ones.
        """
        try:
            return get_strategy(name, self.settings.strategy_dir)
        except UnknownStrategyError as exc:
            raise ServiceError(str(exc)) from None

    # ---- backtests ------------------------------------------------------------------------
    async def backtest(self, request: BacktestRequest) -> BacktestReport:
        """Run a backtest off the event loop and return its report.

        Raises:
            ServiceError: see ``engine.backtest_job.run_backtest_job``.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, run_backtest_job, request,
                                          self.settings)

    # ---- market data ------------------------------------------------------------------------
    def cached(self) -> list[CacheEntry]:
        """What the candle cache holds."""
        return list_cache(self.settings.data_dir)

    def cached_symbols(self, exchange: str | None = None) -> list[str]:
        """Symbols with cached candles (for autocomplete), optionally of one exchange."""
        return sorted({e.symbol for e in self.cached()
                       if exchange is None or e.exchange == exchange})

    async def fetch_candles(self, exchange: str, symbol: str, timeframe: str, start: str,
                            end: str | None = None, client: Any = None) -> FetchReport:
        """Fetch the missing candles of ``[start, end]`` into the cache.

        Raises:
            ServiceError: bad input, or the exchange could not be reached.
        """
        try:
            timeframe_ms(timeframe)
            symbol = normalize_symbol(symbol)
        except (TimeframeError, SymbolError) as exc:
            raise ServiceError(str(exc)) from None
        lo, hi = date_range(start, end)
        if lo is None:
            raise ServiceError("give a start date (YYYY-MM-DD) to fetch from")
        hi = hi if hi is not None else 2**62
        own = client is None
        if own:
            from data.exchanges import make_exchange

            client = make_exchange(exchange, rest_url=self.settings.exchange_rest_url,
                                   market_type="linear" if ":" in symbol else None)
        try:
            fetched, path = await update_cache(client, self.settings.data_dir, exchange,
                                               symbol, timeframe, lo, hi)
        except FetchError as exc:
            raise ServiceError(f"could not fetch {symbol} {timeframe} from {exchange}: {exc}") \
                from None
        finally:
            if own:
                await client.close()
        return FetchReport(fetched, path)

    async def fetch_open_interest(self, exchange: str, symbol: str, timeframe: str, start: str,
                                  end: str | None = None, client: Any = None) -> FetchReport:
        """Fetch open interest history for ``symbol`` and store it beside the candles.

        Raises:
            ServiceError: bad input, an exchange without open interest history, or the
                exchange could not be reached.
        """
        from data.derived import fetch_open_interest, store_open_interest

        lo, hi = date_range(start, end)
        if lo is None:
            raise ServiceError("give a start date (YYYY-MM-DD) to fetch from")
        own = client is None
        if own:
            from data.exchanges import make_exchange

            client = make_exchange(exchange, rest_url=self.settings.exchange_rest_url,
                                   market_type="linear")
        try:
            frame = await fetch_open_interest(client, normalize_symbol(symbol), timeframe, lo,
                                              hi if hi is not None else 2**62)
        except (NotImplementedError, FetchError, SymbolError, TimeframeError) as exc:
            raise ServiceError(f"open interest for {symbol} on {exchange}: {exc}") from None
        finally:
            if own:
                await client.close()
        path = store_open_interest(frame, self.settings.data_dir, exchange, symbol, timeframe)
        return FetchReport(len(frame), path)

    def import_candles(self, path: Path, exchange: str, symbol: str,
                       timeframe: str) -> FetchReport:
        """Import a CSV/Parquet file into the cache.

        Raises:
            ServiceError: unreadable file, bad symbol/timeframe, or candles that break the
                frame contract (nothing is written then).
        """
        try:
            timeframe_ms(timeframe)
            symbol = normalize_symbol(symbol)
            rows, target = import_file(path, self.settings.data_dir, exchange.lower(), symbol,
                                       timeframe)
        except FileNotFoundError:
            raise ServiceError(f"no such file: {path}") from None
        except (TimeframeError, SymbolError, CandleDataError, ValueError) as exc:
            raise ServiceError(f"cannot import {path}: {exc}") from None
        return FetchReport(rows, target)
