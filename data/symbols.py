"""Unified symbols (ccxt form ``BASE/QUOTE`` or ``BASE/QUOTE:SETTLE``)."""

from __future__ import annotations

import re


class SymbolError(ValueError):
    """A symbol not in ccxt's unified ``BASE/QUOTE`` form."""


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"BTC/USDT"`` → ``("BTC", "USDT")``; a ``:SETTLE`` suffix is ignored.

    Raises:
        SymbolError: when the symbol is not ``BASE/QUOTE`` with letters and digits.
    """
    core = symbol.strip().upper().split(":", 1)[0]
    parts = core.split("/")
    if len(parts) != 2 or not all(re.fullmatch(r"[A-Z0-9]+", p) for p in parts):
        raise SymbolError(f"symbol {symbol!r} is not in BASE/QUOTE form, e.g. BTC/USDT")
    return parts[0], parts[1]


def normalize_symbol(symbol: str) -> str:
    """Upper-case unified symbol, keeping a settle suffix: ``"btc/usdt"`` → ``"BTC/USDT"``."""
    base, quote = split_symbol(symbol)
    settle = symbol.strip().upper().split(":", 1)
    return f"{base}/{quote}" + (f":{settle[1]}" if len(settle) == 2 else "")
