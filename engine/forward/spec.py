"""What a request to start a forward run holds, and its checks that need no network.

``RunSpec`` carries what was typed (CLI options, Discord command options); ``check_spec``
validates strategy, parameters, balance, fees, exchange, symbol form and leverage before
anything is fetched, so a bad request is refused at once with one line; ``run_protections``
resolves the run's risk guards. A perpetual needs an exchange with a live ticker path for its
open interest and funding (Bybit's ``tickers`` stream): on another exchange it is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from data.live.messages import UnsupportedTimeframe, protocol_for
from data.symbols import SymbolError, normalize_symbol
from engine.errors import ServiceError
from engine.forward.source import CcxtCandleSource
from engine.perp.leverage import check_leverage
from engine.registry import build_strategy
from engine.risk import Protections, for_run
from engine.settings import Settings
from engine.strategy import Strategy


@dataclass(frozen=True, slots=True)
class RunSpec:
    """A request to start a forward run (strings as typed; None = default)."""

    strategy: str
    symbol: str
    timeframe: str | None = None
    exchange: str | None = None
    balance: float | None = None
    params: dict[str, str] = field(default_factory=dict)
    fee_bps: float | None = None
    maker_fee_bps: float | None = None
    slippage_bps: float | None = None
    channel_id: int | None = None
    started_by: str = "cli"
    #: risk guards as typed (``{"cooldown": "5"}``), over the strategy's and the settings'
    protect: dict[str, str] = field(default_factory=dict)
    #: notional / margin (perpetuals; None = 1)
    leverage: float | None = None


def default_source_factory(settings: Settings) -> Callable[[str, str], CcxtCandleSource]:
    """REST sources built with ``data.exchanges.make_exchange`` and the URL override."""
    from data.exchanges import make_exchange

    def build(exchange: str, market_type: str) -> CcxtCandleSource:
        return CcxtCandleSource(make_exchange(exchange, rest_url=settings.rest_url_for(exchange),
                                              market_type=market_type))

    return build




def check_spec(settings: Settings, spec: RunSpec) -> tuple[Strategy, str, str, float]:
    """Validate what needs no network: strategy, params, timeframe, exchange, symbol form,
    balance, fees, risk guards and leverage (against the documented table; the exchange's own
    maximum is checked when its markets are loaded, ``check_leverage`` with the market).

    Returns:
        (strategy instance, unified symbol, exchange id, starting balance).

    Raises:
        ServiceError: saying what is wrong and what is valid.
    """
    from engine.limits import check_balance, check_bps

    if not spec.strategy.strip():
        raise ServiceError("give a strategy name (see /strategies or paperbot strategies)")
    if not spec.symbol.strip():
        raise ServiceError("give a symbol, e.g. BTC/USDT (spot) or BTC/USDT:USDT "
                           "(perpetual)")
    try:
        balance = check_balance(settings.balance if spec.balance is None else spec.balance,
                                "balance")
        for name in ("fee_bps", "maker_fee_bps", "slippage_bps"):
            if getattr(spec, name) is not None:
                check_bps(getattr(spec, name), name)
    except ValueError as exc:
        raise ServiceError(str(exc)) from None
    strategy = build_strategy(spec.strategy.strip(), spec.params, spec.timeframe,
                              settings.strategy_dir)
    run_protections(settings, spec, strategy)
    exchange = (spec.exchange or settings.live_exchange).strip().lower()
    try:
        protocol = protocol_for(exchange)
        symbol = normalize_symbol(spec.symbol)
        protocol.topic(symbol, strategy.timeframes[0])
    except (ValueError, SymbolError, UnsupportedTimeframe) as exc:
        raise ServiceError(str(exc)) from None
    if ":" in symbol and exchange != "bybit":
        raise ServiceError(f"{symbol} is a perpetual: its live open interest and funding come "
                           f"from bybit's ticker stream, which {exchange} lacks here; use "
                           f"exchange bybit, or the spot symbol {symbol.split(':')[0]}")
    check_leverage(spec.leverage, exchange, symbol)  # LeverageError is a ServiceError
    return strategy, symbol, exchange, balance


def run_protections(settings: Settings, spec: RunSpec, strategy: Strategy) -> Protections:
    """The run's risk guards: ``spec.protect`` over the strategy's over the settings'.

    Raises:
        ProtectionError: (a ``ServiceError``) an unknown protection or a bad value, in one
            line.
    """
    return for_run(spec.protect, strategy, settings)
