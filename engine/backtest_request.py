"""What a backtest request and its report hold, and how dates are read (no heavy imports).

The job itself is ``engine.backtest_job.run_backtest_job``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from data.names import ExchangeNameError, check_exchange_name, shown
from data.symbols import SymbolError, normalize_symbol
from engine.backtest import BacktestResult
from engine.errors import ServiceError
from engine.fills import FillModel
from engine.limits import check_balance, check_bps
from engine.perp.leverage import check_leverage
from engine.registry import build_strategy
from engine.reporting import result_json
from engine.risk import Protections, for_run
from engine.settings import Settings
from engine.strategy import Strategy


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    """What the trader asked for. Strings as typed; ``None`` means the default.

    ``start``/``end`` are ``YYYY-MM-DD`` (UTC); ``end`` includes that whole day. ``params`` are
    ``key=value`` overrides checked against the strategy's declared parameters. ``balance`` is
    in quote currency (finite, > 0, at most ``engine.limits.MAX_BALANCE``); fees and slippage
    in basis points (0 to ``engine.limits.MAX_BPS``). ``protect`` holds the run's risk
    guards as typed (``{"cooldown": "5"}``), over the strategy's and the settings' own.
    ``leverage`` is notional / margin: 1 (the default) on spot, up to the symbol's maximum on
    a perpetual (``engine.perp.leverage``).
    """

    strategy: str
    symbol: str
    timeframe: str | None = None
    exchange: str | None = None
    start: str | None = None
    end: str | None = None
    balance: float | None = None
    fee_bps: float | None = None
    maker_fee_bps: float | None = None
    slippage_bps: float | None = None
    params: dict[str, str] = field(default_factory=dict)
    out_dir: Path | None = None
    charts: bool = True
    protect: dict[str, str] = field(default_factory=dict)
    #: fetch what a dated span lacks before running (when online); the bot asks first instead
    #: (``MissingCandles`` → a Fetch candles button)
    fetch_missing: bool = True
    leverage: float | None = None


@dataclass(frozen=True, slots=True)
class BacktestReport:
    """A finished backtest: the result, files written and notes on data coverage."""

    result: BacktestResult
    charts: dict[str, Path]
    trades_csv: Path | None
    json_path: Path | None
    warnings: list[str]
    data_source: str
    elapsed_s: float

    def to_json(self) -> dict[str, Any]:
        """The ``backtest --json`` object (``engine.reporting.result_json``)."""
        fills = self.result.config.fills
        return result_json(self.result, {k: str(v) for k, v in self.charts.items()},
                           {"trades_csv": str(self.trades_csv) if self.trades_csv else None,
                            "data_source": self.data_source, "warnings": self.warnings,
                            "lookahead": [f.to_dict() for f in self.result.lookahead],
                            "balance": self.result.config.balance,
                            "fills": {"taker_fee_bps": fills.taker_fee_bps,
                                      "maker_fee_bps": fills.maker_fee_bps,
                                      "slippage_bps": fills.slippage_bps},
                            "elapsed_s": round(self.elapsed_s, 3)})


def parse_day(text: str, what: str) -> int:
    """``"2025-06-01"`` (or ``"2025-06-01T12:00"``) → ms UTC.

    Raises:
        ServiceError: for anything else, saying the expected form.
    """
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"):
        try:
            moment = datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
            return int(moment.timestamp() * 1000)
        except ValueError:
            continue
    raise ServiceError(f"bad {what} date {shown(text)}: use YYYY-MM-DD, e.g. 2025-06-01")


def date_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """Parse ``start``/``end``; a date-only ``end`` includes its whole day (exclusive bound).

    Raises:
        ServiceError: for a bad date or a start not before the end.
    """
    lo = parse_day(start, "start") if start else None
    hi = None
    if end:
        hi = parse_day(end, "end")
        if len(end.strip()) == 10:
            hi += 86_400_000
    if lo is not None and hi is not None and lo >= hi:
        raise ServiceError(f"start {start} is not before end {end}")
    return lo, hi


def check_request(request: BacktestRequest,
                  settings: Settings) -> tuple[Strategy, str, str, str]:
    """Validate what needs no candles: strategy, params, timeframe, symbol, exchange, dates,
    balance, fees, slippage, leverage and protections.

    Returns:
        (strategy instance, timeframe, unified symbol, exchange id).

    Raises:
        ServiceError: saying what is wrong and what is valid.
    """
    check_amounts(request)
    date_range(request.start, request.end)
    strategy = build_strategy(request.strategy, request.params, request.timeframe,
                              settings.strategy_dir)
    try:
        symbol = normalize_symbol(request.symbol)
        exchange = check_exchange_name((request.exchange or settings.exchange).lower())
    except (SymbolError, ExchangeNameError) as exc:
        raise ServiceError(str(exc)) from None
    request_leverage(request, exchange, symbol)
    request_protections(request, strategy, settings)
    return strategy, strategy.timeframes[0], symbol, exchange


def request_leverage(request: BacktestRequest, exchange: str, symbol: str) -> float:
    """The backtest's leverage (1 when not given), checked against the symbol: spot takes 1
    only, a perpetual up to its maximum (``engine.perp.check_leverage``; backtests use the
    documented table, being offline).

    Raises:
        LeverageError: (a ``ServiceError``) the leverage that is not allowed and what is, in
            one line.
    """
    return check_leverage(request.leverage, exchange, symbol)


def request_fills(request: BacktestRequest, settings: Settings) -> FillModel:
    """The backtest's fees and slippage: the request's, else the settings' defaults (the
    maker fee falls back to the request's taker fee, then to ``settings.maker_fee``)."""
    return FillModel(
        taker_fee_bps=settings.fee_bps if request.fee_bps is None else request.fee_bps,
        maker_fee_bps=(request.maker_fee_bps if request.maker_fee_bps is not None else
                       request.fee_bps if request.fee_bps is not None else settings.maker_fee),
        slippage_bps=(settings.slippage_bps if request.slippage_bps is None
                      else request.slippage_bps),
    )


def request_protections(request: BacktestRequest, strategy: Strategy,
                        settings: Settings) -> Protections:
    """The backtest's risk guards: ``request.protect`` over the strategy's ``protections``
    over the settings' ``PAPERBOT_PROTECT_*`` (``engine.risk.for_run``).

    Raises:
        ProtectionError: (a ``ServiceError``) an unknown protection or a bad value, in one
            line.
    """
    return for_run(request.protect, strategy, settings)


def check_amounts(request: BacktestRequest) -> None:
    """Check the numbers given (None = the settings' default, validated at start).

    Raises:
        ServiceError: a balance or a fee/slippage out of range (``engine.limits``).
    """
    try:
        if request.balance is not None:
            check_balance(request.balance, "balance")
        for name in ("fee_bps", "maker_fee_bps", "slippage_bps"):
            value = getattr(request, name)
            if value is not None:
                check_bps(value, name)
    except ValueError as exc:
        raise ServiceError(str(exc)) from None
