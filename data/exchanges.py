"""Construction of ccxt exchange clients, optionally pointed at a mirror or a local stand-in.

Only public market data is used by paperbot, so no API keys are ever configured here.
"""

from __future__ import annotations

import difflib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from data import ccxt_lazy
from data.names import shown

MARKET_TYPES = ("spot", "linear", "inverse")
"""Market types understood by :func:`make_exchange` (linear = USDT-margined perpetuals)."""

# ccxt ids whose markets are of one fixed type: the default ``market_type`` for them.
_FIXED_TYPE = {"binanceusdm": "linear", "binancecoinm": "inverse"}
# Value of ccxt's options['defaultType'] per (exchange family, market type).
_BINANCE_DEFAULT = {"spot": "spot", "linear": "future", "inverse": "delivery"}


class UnknownExchangeError(ValueError):
    """An exchange id that ccxt does not know; the message says how to list the valid ones."""


def check_exchange_id(exchange_id: str) -> str:
    """``exchange_id`` when it is a ccxt exchange id (``binance``, ``bybit``, ``okx``…).

    Raises:
        UnknownExchangeError: naming close ids and how to list every id.
    """
    known = ccxt_lazy.exchange_ids()
    if isinstance(exchange_id, str) and exchange_id in known:
        return exchange_id
    close = difflib.get_close_matches(str(exchange_id).lower()[:40], known, n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise UnknownExchangeError(
        f"unknown exchange {shown(exchange_id)}: {hint}use a ccxt exchange id such as "
        f"binance, bybit or okx (all {len(known)}: "
        "python -c 'import ccxt; print(ccxt.exchanges)')")


def make_exchange(
    exchange_id: str,
    *,
    rest_url: str | None = None,
    market_type: str | None = None,
    async_: bool = True,
    timeout_ms: int = 10_000,
) -> Any:
    """Create a ccxt exchange for public market data with rate limiting enabled.

    Args:
        exchange_id: ccxt id, e.g. ``"binance"``, ``"binanceusdm"``, ``"bybit"``.
        rest_url: scheme+host (optionally a path prefix) replacing the host of every URL in
            ``exchange.urls['api']``, e.g. ``"http://127.0.0.1:8123"`` or a testnet host; the
            path of each endpoint is kept. ``None`` keeps the exchange's own hosts.
        market_type: ``"spot"``, ``"linear"`` or ``"inverse"``; ``None`` means ``"linear"`` for
            binanceusdm, ``"inverse"`` for binancecoinm and ``"spot"`` otherwise. For binance*
            and bybit ``load_markets()`` then fetches only that market type (one public
            endpoint, no currency endpoints: those need API keys, and none are set).
        async_: return a ``ccxt.async_support`` instance (close it with ``await ex.close()``);
            ``False`` returns a synchronous ``ccxt`` instance.
        timeout_ms: HTTP request timeout in milliseconds.

    Returns:
        The configured, not yet connected ccxt exchange instance.

    Raises:
        UnknownExchangeError: unknown ccxt id (a ``ValueError``).
        ValueError: unknown market type, or a market type that the exchange id cannot serve
            (e.g. ``"spot"`` for binanceusdm).
    """
    module = ccxt_lazy.load(async_)  # only this exchange's module is imported
    cls = getattr(module, check_exchange_id(exchange_id), None)
    if cls is None:
        raise UnknownExchangeError(f"ccxt has no {'async ' if async_ else ''}client for "
                                   f"{shown(exchange_id)}")
    market_type = market_type or _FIXED_TYPE.get(exchange_id, "spot")
    if market_type not in MARKET_TYPES:
        raise ValueError(f"market_type must be one of {MARKET_TYPES}, got {market_type!r}")
    fixed = _FIXED_TYPE.get(exchange_id)
    if fixed is not None and market_type != fixed:
        raise ValueError(f"{exchange_id} only serves {fixed} markets, not {market_type!r}")

    exchange = cls({"enableRateLimit": True, "timeout": int(timeout_ms)})
    options = exchange.options
    if exchange_id.startswith("binance"):
        options["fetchMarkets"] = {**_as_dict(options.get("fetchMarkets")), "types": [market_type]}
        options["fetchCurrencies"] = False  # sapi capital/config/getall: private, needs keys
        options["fetchMargins"] = False
        if fixed is None:
            options["defaultType"] = _BINANCE_DEFAULT[market_type]
    elif exchange_id == "bybit":
        # bybit also loads option markets (one request per base coin) unless told otherwise.
        options["fetchMarkets"] = {**_as_dict(options.get("fetchMarkets")), "types": [market_type]}
        options["defaultType"] = "spot" if market_type == "spot" else "swap"
        if market_type != "spot":
            options["defaultSubType"] = market_type
    else:
        options["defaultType"] = "spot" if market_type == "spot" else "swap"
    if rest_url is not None:
        exchange.urls["api"] = rewrite_api_urls(exchange.urls["api"], rest_url)
    return exchange


def rewrite_api_urls(api: Any, rest_url: str) -> Any:
    """Return a copy of ccxt's ``urls['api']`` (str or nested dict/list) with hosts replaced.

    Every ``http(s)://`` URL keeps its path and query but gets the scheme and host of
    ``rest_url`` (whose own path, if any, is prefixed). A ``{hostname}`` placeholder in the host
    (bybit) disappears with the host. Other strings (e.g. ``wss://`` URLs) are returned as is.

    Raises:
        ValueError: ``rest_url`` is not an absolute http(s) URL.
    """
    base = urlsplit(rest_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ValueError("rest_url must be an absolute http(s) URL like http://host[:port]")
    prefix = base.path.rstrip("/")

    def rewrite(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: rewrite(item) for key, item in value.items()}
        if isinstance(value, list):
            return [rewrite(item) for item in value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            parts = urlsplit(value)
            return urlunsplit((base.scheme, base.netloc, prefix + parts.path, parts.query, ""))
        return value

    return rewrite(api)


def symbol_to_exchange_id(symbol: str, exchange_id: str, market_type: str = "spot") -> str:
    """Map a unified ccxt symbol to the exchange's market id without loading markets.

    ``"BTC/USDT"`` and ``"BTC/USDT:USDT"`` both give ``"BTCUSDT"`` on binance, binanceusdm and
    bybit (spot and linear use the same id there). ``market_type`` is accepted for symmetry with
    :func:`make_exchange`; inverse/dated contracts are not supported.

    Raises:
        ValueError: malformed symbol, unsupported exchange id or market type.
    """
    if not (exchange_id.startswith("binance") or exchange_id == "bybit"):
        raise ValueError(f"no offline symbol mapping for {exchange_id!r}; use exchange.market_id()")
    if market_type not in ("spot", "linear"):
        raise ValueError(f"unsupported market_type {market_type!r}")
    pair, _, settle = symbol.partition(":")
    base, sep, quote = pair.partition("/")
    if not sep or not base or not quote or (settle and settle.upper() != quote.upper()):
        raise ValueError(f"expected a unified symbol like 'BTC/USDT', got {symbol!r}")
    return f"{base}{quote}".upper()


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}
