"""Unified symbols (ccxt form ``BASE/QUOTE`` or ``BASE/QUOTE:SETTLE``) and cache file names.

paperbot trades spot markets (``BTC/USDT``) and linear perpetuals settled in the quote currency
(``BTC/USDT:USDT``); inverse contracts (``BTC/USD:BTC``) and dated futures are refused.

In cache file names a spot pair is ``BASE-QUOTE`` and a perpetual ``BASE-QUOTE-SETTLE``
(``binance_BTC-USDT_1h.parquet`` vs ``bybit_BTC-USDT-USDT_1h.parquet``). On an exchange id
that lists perpetuals only (``binanceusdm``) ``BTC/USDT`` means the perpetual ``BTC/USDT:USDT``.
"""

from __future__ import annotations

import re
from pathlib import Path

from data.names import shown

#: Longest symbol accepted, settle suffix included (``1000000BABYDOGE/USDT:USDT`` has 25).
MAX_SYMBOL_LENGTH = 40
_PART = re.compile(r"[A-Z0-9]+")

#: ccxt exchange ids whose markets are all linear perpetuals: a symbol without a settle
#: currency means the perpetual there (``binanceusdm`` ``BTC/USDT`` = ``BTC/USDT:USDT``).
LINEAR_ONLY_EXCHANGES = frozenset({"binanceusdm"})


class SymbolError(ValueError):
    """A symbol not in ccxt's unified ``BASE/QUOTE`` form, or a market paperbot cannot trade."""


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"BTC/USDT"`` → ``("BTC", "USDT")``; a ``:SETTLE`` suffix is ignored.

    Raises:
        SymbolError: when the symbol is not ``BASE/QUOTE`` with letters and digits, or is
            longer than ``MAX_SYMBOL_LENGTH``.
    """
    if not isinstance(symbol, str) or len(symbol.strip()) > MAX_SYMBOL_LENGTH:
        raise SymbolError(f"symbol {shown(symbol)} is too long (at most {MAX_SYMBOL_LENGTH} "
                          "characters), e.g. BTC/USDT")
    core = symbol.strip().upper().split(":", 1)[0]
    parts = core.split("/")
    if len(parts) != 2 or not all(_PART.fullmatch(p) for p in parts):
        raise SymbolError(f"symbol {shown(symbol)} is not in BASE/QUOTE form, e.g. BTC/USDT")
    return parts[0], parts[1]


def base_currency(symbol: str) -> str:
    """``"BTC/USDT:USDT"`` → ``"BTC"``."""
    return symbol.split("/", 1)[0]


def quote_currency(symbol: str) -> str:
    """``"BTC/USDT:USDT"`` → ``"USDT"``; ``""`` when the symbol has no quote."""
    if "/" not in symbol:
        return ""
    return symbol.split("/", 1)[1].split(":", 1)[0]


def normalize_symbol(symbol: str) -> str:
    """Upper-case unified symbol, keeping a settle suffix: ``"btc/usdt"`` → ``"BTC/USDT"``.

    Raises:
        SymbolError: a malformed symbol, or a contract not settled in its quote currency
            (``BTC/USDT:BTC`` is inverse): only spot ``BTC/USDT`` and linear perpetuals
            ``BTC/USDT:USDT`` are supported.
    """
    base, quote = split_symbol(symbol)
    _, colon, settle = symbol.strip().upper().partition(":")
    if colon and settle != quote:
        raise SymbolError(
            f"symbol {shown(symbol)} is not supported: the contract settles in "
            f"{shown(settle, 12) if settle else 'nothing'}, not in {quote}; paperbot trades "
            f"spot {base}/{quote} and linear perpetuals {base}/{quote}:{quote}")
    return f"{base}/{quote}" + (f":{settle}" if colon else "")


def market_symbol(exchange: str, symbol: str) -> str:
    """The normalised symbol of the market meant on ``exchange``: on a perpetual-only exchange
    id (``LINEAR_ONLY_EXCHANGES``) ``BTC/USDT`` becomes ``BTC/USDT:USDT``; otherwise as given.

    Raises:
        SymbolError: see ``normalize_symbol``.
    """
    symbol = normalize_symbol(symbol)
    if exchange in LINEAR_ONLY_EXCHANGES and ":" not in symbol:
        symbol += ":" + quote_currency(symbol)
    return symbol


def is_perpetual(exchange: str, symbol: str) -> bool:
    """True when ``symbol`` on ``exchange`` is a linear perpetual (see ``market_symbol``).

    Raises:
        SymbolError: see ``normalize_symbol``.
    """
    return ":" in market_symbol(exchange, symbol)


def perpetual_of(symbol: str) -> str:
    """The linear perpetual of a pair: ``"BTC/USDT"`` and ``"BTC/USDT:USDT"`` → ``"BTC/USDT:USDT"``.

    Raises:
        SymbolError: see ``normalize_symbol``.
    """
    base, quote = split_symbol(normalize_symbol(symbol))
    return f"{base}/{quote}:{quote}"


def cache_pair(exchange: str, symbol: str) -> str:
    """The pair as written in cache file names: ``BTC-USDT`` (spot), ``BTC-USDT-USDT``
    (perpetual, also ``BTC/USDT`` on ``binanceusdm``).

    Raises:
        SymbolError: see ``normalize_symbol``.
    """
    return market_symbol(exchange, symbol).replace("/", "-").replace(":", "-")


_CACHE_NAME = re.compile(r"^(?P<exchange>[a-z0-9]+)_(?P<base>[A-Z0-9]+)-(?P<quote>[A-Z0-9]+)"
                         r"(?:-(?P<settle>[A-Z0-9]+))?_(?P<timeframe>[1-9][0-9]*[mhdw])\.parquet$")


def parse_cache_name(name: str) -> tuple[str, str, str] | None:
    """Exchange, unified symbol and timeframe of a candle file name; None for other names.

    ``"binance_BTC-USDT_1m.parquet"`` → ``("binance", "BTC/USDT", "1m")``;
    ``"bybit_BTC-USDT-USDT_1h.parquet"`` → ``("bybit", "BTC/USDT:USDT", "1h")``.
    """
    match = _CACHE_NAME.match(name)
    if match is None:
        return None
    settle = f":{match['settle']}" if match["settle"] else ""
    return match["exchange"], f"{match['base']}/{match['quote']}{settle}", match["timeframe"]


def cached_symbols(data_dir: Path, exchange: str | None = None) -> list[str]:
    """Symbols with candle files in the cache folder (from file names only; no file is read)."""
    found = set()
    for path in Path(data_dir).glob("*.parquet"):
        parsed = parse_cache_name(path.name)
        if parsed is not None and (exchange is None or parsed[0] == exchange):
            found.add(parsed[1])
    return sorted(found)
