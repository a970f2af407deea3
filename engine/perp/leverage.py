"""The leverage a run or a backtest may use, and the maintenance margin rate of each symbol.

Leverage is notional / margin: a position of notional N reserves N / leverage of the equity
(``engine.portfolio``). The rules:

* spot symbols trade at leverage 1 only;
* a perpetual takes a leverage from 1 to the exchange's maximum for the symbol: the ccxt
  market's ``limits.leverage.max`` when the exchange gives it (Bybit's instruments-info
  ``leverageFilter.maxLeverage``; forward runs read it from the markets they load), else
  ``MAX_LEVERAGE`` below (backtests, which run offline, always use the table), else
  ``DEFAULT_MAX_LEVERAGE``;
* the maintenance margin rate (the liquidation level, ``engine.perp.liquidation``) is the
  tier-1 rate of ``MAINTENANCE_MARGIN_RATE`` (the smallest positions' tier: paper positions are
  far below the next tier's notional), else ``DEFAULT_MAINTENANCE_MARGIN_RATE``;
* a leverage whose initial margin rate (1 / leverage) does not exceed the maintenance margin
  rate is refused: the position would be liquidated at its entry.

Sources of the table (tier 1, checked for issue 12): Bybit help center "Liquidation Price (USDT
Contract)" and the v5 instruments-info ``leverageFilter`` (BTCUSDT, ETHUSDT: 100x, MMR 0.5 %);
Binance "Updates to Leverage and Margin Tiers of Binance Futures Contracts (2021-03-18)"
(BTCUSDT: 125x, MMR 0.40 % up to 50,000 USDT). Exchanges change these: the table is a
fallback, the exchange's own market data wins where a run has it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from data.symbols import is_perpetual, perpetual_of
from engine.errors import ServiceError
from engine.perp.liquidation import liquidation_price

#: Maximum leverage by (exchange id, perpetual symbol) when the exchange does not say.
MAX_LEVERAGE: dict[tuple[str, str], float] = {
    ("bybit", "BTC/USDT:USDT"): 100.0,
    ("bybit", "ETH/USDT:USDT"): 100.0,
    ("binanceusdm", "BTC/USDT:USDT"): 125.0,
    ("binance", "BTC/USDT:USDT"): 125.0,
}
#: Maximum leverage of a perpetual that is neither in the table nor in the exchange's markets.
DEFAULT_MAX_LEVERAGE = 20.0
#: Tier-1 maintenance margin rate (fraction of the notional) by (exchange id, symbol).
MAINTENANCE_MARGIN_RATE: dict[tuple[str, str], float] = {
    ("bybit", "BTC/USDT:USDT"): 0.005,
    ("bybit", "ETH/USDT:USDT"): 0.005,
    ("binanceusdm", "BTC/USDT:USDT"): 0.004,
    ("binance", "BTC/USDT:USDT"): 0.004,
}
#: Maintenance margin rate of the other perpetuals (conservative: most altcoins' tier 1 is
#: 1 % or more).
DEFAULT_MAINTENANCE_MARGIN_RATE = 0.01


class LeverageError(ServiceError, ValueError):
    """A leverage that the symbol does not allow (one line saying what is valid); a
    ``ServiceError``, so the CLI and the bot show it as it is."""


@dataclass(frozen=True, slots=True)
class MarginRules:
    """How positions of a run are margined.

    Attributes:
        leverage: notional / margin, ≥ 1 (1: fully funded, never liquidated).
        maintenance_margin_rate: fraction of the notional (0.005 = 0.5 %); used only when
            ``leverage`` > 1.
    """

    leverage: float = 1.0
    maintenance_margin_rate: float = 0.0

    @property
    def liquidates(self) -> bool:
        """True when positions can be liquidated (leverage above 1)."""
        return self.leverage > 1.0

    def liquidation_price(self, direction: int, entry: float) -> float:
        """The liquidation price (quote) of a position entered at ``entry``; ``nan`` at
        leverage 1 (``engine.perp.liquidation.liquidation_price``)."""
        return liquidation_price(direction, entry, self.leverage, self.maintenance_margin_rate)


def maintenance_margin_rate(exchange: str, symbol: str) -> float:
    """The tier-1 maintenance margin rate of ``symbol``'s perpetual on ``exchange`` (a
    fraction): the table's, else ``DEFAULT_MAINTENANCE_MARGIN_RATE``."""
    key = (exchange.lower(), perpetual_of(symbol))
    return MAINTENANCE_MARGIN_RATE.get(key, DEFAULT_MAINTENANCE_MARGIN_RATE)


def max_leverage(exchange: str, symbol: str,
                 market: dict[str, Any] | None = None) -> tuple[float, str]:
    """(the maximum leverage of ``symbol`` on ``exchange``, where it comes from).

    ``market`` is the ccxt market of the symbol when the caller has it: its
    ``limits.leverage.max`` wins when present.
    """
    limit = (((market or {}).get("limits") or {}).get("leverage") or {}).get("max")
    try:
        if limit is not None and math.isfinite(float(limit)) and float(limit) >= 1.0:
            return float(limit), f"{exchange}'s market limits"
    except (TypeError, ValueError):
        pass
    key = (exchange.lower(), perpetual_of(symbol))
    if key in MAX_LEVERAGE:
        return MAX_LEVERAGE[key], "paperbot's table, docs/perpetuals.md"
    return DEFAULT_MAX_LEVERAGE, "paperbot's default for symbols not in its table"


def check_leverage(leverage: float | None, exchange: str, symbol: str,
                   market: dict[str, Any] | None = None) -> float:
    """The leverage to use (1.0 for None), checked against the symbol's rules (module doc).

    Raises:
        LeverageError: leverage above 1 on spot, not a number from 1 to the maximum, or too
            high for the maintenance margin rate — one line naming what is valid.
        SymbolError: a malformed symbol.
    """
    if leverage is None:
        return 1.0
    value = float(leverage)
    if not is_perpetual(exchange, symbol):
        if value == 1.0:
            return 1.0
        raise LeverageError(f"leverage {value:g} needs a perpetual: {symbol} is spot, which "
                            f"trades at leverage 1 (use {perpetual_of(symbol)} for the "
                            "perpetual)")
    top, source = max_leverage(exchange, symbol, market)
    if not math.isfinite(value) or value < 1.0:
        raise LeverageError(f"leverage must be a number from 1 to {top:g} for {symbol} on "
                            f"{exchange}, got {leverage}")
    if value > top:
        raise LeverageError(f"leverage {value:g} is above the maximum of {top:g}x for {symbol} "
                            f"on {exchange} ({source})")
    mmr = maintenance_margin_rate(exchange, symbol)
    if value > 1.0 and 1.0 / value <= mmr:
        raise LeverageError(f"leverage {value:g} is too high for {symbol} on {exchange}: its "
                            f"margin (1/{value:g}) would not exceed the maintenance margin rate "
                            f"{mmr:.2%}; use at most {math.floor(1.0 / mmr) - 1:g}")
    return value


def margin_rules(leverage: float, exchange: str, symbol: str) -> MarginRules:
    """The ``MarginRules`` of a run on ``symbol`` at a leverage already checked."""
    if leverage <= 1.0 or not is_perpetual(exchange, symbol):
        return MarginRules(1.0, 0.0)
    return MarginRules(float(leverage), maintenance_margin_rate(exchange, symbol))
