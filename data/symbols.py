"""Unified symbols (ccxt form ``BASE/QUOTE`` or ``BASE/QUOTE:SETTLE``).

paperbot trades spot markets (``BTC/USDT``) and linear perpetuals settled in the quote currency
(``BTC/USDT:USDT``); inverse contracts (``BTC/USD:BTC``) and dated futures are refused.
"""

from __future__ import annotations

import re
from pathlib import Path

from data.names import shown

#: Longest symbol accepted, settle suffix included (``1000000BABYDOGE/USDT:USDT`` has 25).
MAX_SYMBOL_LENGTH = 40
_PART = re.compile(r"[A-Z0-9]+")


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


_CACHE_NAME = re.compile(r"^(?P<exchange>[a-z0-9]+)_(?P<base>[A-Z0-9]+)-(?P<quote>[A-Z0-9]+)_"
                         r"(?P<timeframe>[1-9][0-9]*[mhdw])\.parquet$")


def parse_cache_name(name: str) -> tuple[str, str, str] | None:
    """``"binance_BTC-USDT_1m.parquet"`` → ``("binance", "BTC/USDT", "1m")``; else None."""
    match = _CACHE_NAME.match(name)
    if match is None:
        return None
    return match["exchange"], f"{match['base']}/{match['quote']}", match["timeframe"]


def cached_symbols(data_dir: Path, exchange: str | None = None) -> list[str]:
    """Symbols with candle files in the cache folder (from file names only; no file is read)."""
    found = set()
    for path in Path(data_dir).glob("*.parquet"):
        parsed = parse_cache_name(path.name)
        if parsed is not None and (exchange is None or parsed[0] == exchange):
            found.add(parsed[1])
    return sorted(found)
