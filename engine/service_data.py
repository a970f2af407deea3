"""Market data of the service: symbols for autocomplete, the candle cache, fetching candles
and perpetual history (open interest, funding) through ccxt, importing files.

Mixed into ``engine.service.PaperService``. pandas and pyarrow are imported inside the methods
(files), so the long-running process stays small. Times ms UTC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data.history import FetchError
from data.symbols import SymbolError, normalize_symbol
from data.timeframes import TimeframeError, timeframe_ms
from engine.backtest_request import date_range
from engine.errors import ServiceError

if TYPE_CHECKING:
    from data.cache import CacheEntry


@dataclass(frozen=True, slots=True)
class FetchReport:
    """Result of a fetch or an import: rows added and the file written."""

    fetched: int
    path: Path


class DataService:
    """Mixin of ``PaperService``: needs ``settings`` and ``engine``."""

    settings: Any
    engine: Any

    async def symbols(self, query: str = "", exchange: str | None = None,
                      limit: int = 25) -> list[str]:
        """Symbols matching ``query`` (case-insensitive substring): cached ones first, then the
        live exchange's markets when they are loaded. For autocomplete."""
        from data.symbols import cached_symbols

        names = cached_symbols(self.settings.data_dir, exchange)
        if self.engine is not None:
            live = self.engine.known_markets()
            names += [m for m in live if m not in names]
        wanted = query.strip().upper()
        return [n for n in names if wanted in n][:limit]

    # ---- market data ------------------------------------------------------------------------
    def cached(self) -> list[CacheEntry]:
        """What the candle cache holds."""
        from data.cache import list_cache

        return list_cache(self.settings.data_dir)

    async def fetch_candles(self, exchange: str, symbol: str, timeframe: str, start: str,
                            end: str | None = None, client: Any = None) -> FetchReport:
        """Fetch the missing candles of ``[start, end]`` into the cache.

        Raises:
            ServiceError: bad input, or the exchange could not be reached.
        """
        from data.cache_sync import update_cache

        symbol, lo, hi = _fetch_span(symbol, timeframe, start, end)
        async with self._client(exchange, client, "linear" if ":" in symbol else None) as ex:
            try:
                fetched, path = await update_cache(ex, self.settings.data_dir, exchange,
                                                   symbol, timeframe, lo, hi)
            except FetchError as exc:
                raise ServiceError(f"could not fetch {symbol} {timeframe} from {exchange}: "
                                   f"{exc}") from None
        return FetchReport(fetched, path)

    async def fetch_perp_history(self, exchange: str, symbol: str, timeframe: str, start: str,
                                 end: str | None = None, kind: str = "open_interest",
                                 client: Any = None) -> FetchReport:
        """Fetch open interest (``kind="open_interest"``, sampled at ``timeframe``, 5m at the
        finest) or funding rate (``kind="funding"``) history of a perpetual and store it beside
        the candles (``data.perp_fetch``).

        Raises:
            ServiceError: bad input, a spot symbol, an exchange without that history, or the
                exchange could not be reached.
        """
        from data.perp_fetch import update_funding, update_open_interest

        what = "funding rates" if kind == "funding" else "open interest"
        symbol, lo, hi = _fetch_span(symbol, timeframe, start, end)
        check_perpetual(exchange, symbol, f"{what} exist for perpetuals only")
        async with self._client(exchange, client, "linear") as ex:
            try:
                if kind == "funding":
                    fetched, path = await update_funding(ex, self.settings.data_dir, exchange,
                                                         symbol, lo, hi)
                else:
                    fetched, path = await update_open_interest(
                        ex, self.settings.data_dir, exchange, symbol, timeframe, lo, hi)
            except (NotImplementedError, FetchError) as exc:
                raise ServiceError(f"{what} for {symbol} on {exchange}: {exc}") from None
        return FetchReport(fetched, path)

    def import_candles(self, path: Path, exchange: str, symbol: str,
                       timeframe: str) -> FetchReport:
        """Import a CSV/Parquet file into the cache.

        Raises:
            ServiceError: unreadable file, bad symbol/timeframe, or candles that break the
                frame contract (nothing is written then).
        """
        from data.frames import CandleDataError
        from data.importer import import_file

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

    @asynccontextmanager
    async def _client(self, exchange: str, client: Any,
                      market_type: str | None) -> AsyncIterator[Any]:
        """``client`` as is, or a ccxt client of ``exchange`` made here and closed after."""
        if client is not None:
            yield client
            return
        from data.exchanges import make_exchange

        own = make_exchange(exchange, rest_url=self.settings.rest_url_for(exchange),
                            market_type=market_type)
        try:
            yield own
        finally:
            await own.close()


def check_perpetual(exchange: str, symbol: str, what: str) -> None:
    """Refuse a spot ``symbol``: ``"<what>: use --symbol BTC/USDT:USDT (BTC/USDT is spot)"``.

    Raises:
        ServiceError: a spot or malformed symbol.
    """
    from data.symbols import is_perpetual, perpetual_of

    try:
        spot = not is_perpetual(exchange, symbol)
    except SymbolError as exc:
        raise ServiceError(str(exc)) from None
    if spot:
        symbol = normalize_symbol(symbol)
        raise ServiceError(f"{what}: use --symbol {perpetual_of(symbol)} ({symbol} is spot)")


def _fetch_span(symbol: str, timeframe: str, start: str,
                end: str | None) -> tuple[str, int, int]:
    """The normalised symbol and the ``[start, end]`` span in ms UTC (no end: open-ended).

    Raises:
        ServiceError: a bad symbol, timeframe or date, or no start.
    """
    try:
        timeframe_ms(timeframe)
        symbol = normalize_symbol(symbol)
    except (TimeframeError, SymbolError) as exc:
        raise ServiceError(str(exc)) from None
    lo, hi = date_range(start, end)
    if lo is None:
        raise ServiceError("give a start date (YYYY-MM-DD) to fetch from")
    return symbol, lo, hi if hi is not None else 2**62
