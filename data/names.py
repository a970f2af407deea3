"""Names that become file names (exchange ids), and how user text is quoted in messages.

Nothing a user typed reaches a path before it matched its grammar: exchange ids here, symbols
in ``data.symbols``, timeframes in ``data.timeframes``.
"""

from __future__ import annotations

import re

#: Longest exchange id accepted (ccxt ids are at most 20 characters).
MAX_EXCHANGE_LENGTH = 32
_EXCHANGE = re.compile(r"[a-z0-9]+")


class ExchangeNameError(ValueError):
    """An exchange id that is not a plain lower-case name (``[a-z0-9]+``)."""


def shown(value: object, limit: int = 32) -> str:
    """``repr`` of ``value`` cut to about ``limit`` characters ("…"), for one-line messages."""
    if not isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 1] + "…"
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return repr(value)


def check_exchange_name(exchange: str) -> str:
    """``exchange`` when it is a plain lower-case id such as ``binance`` (safe in a file name).

    Raises:
        ExchangeNameError: for anything else: upper case, dots, slashes, spaces, empty, or
            longer than ``MAX_EXCHANGE_LENGTH``.
    """
    if not isinstance(exchange, str) or len(exchange) > MAX_EXCHANGE_LENGTH \
            or not _EXCHANGE.fullmatch(exchange):
        raise ExchangeNameError(
            f"exchange {shown(exchange)} is not a plain exchange id: use lower-case letters "
            "and digits, e.g. binance or bybit")
    return exchange
