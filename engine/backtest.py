"""The backtest runner: steps a strategy through historical candles with the shared core.

``run_backtest`` takes candles already loaded (``data.loader``) and returns a
``BacktestResult``: trades, the equity curve sampled at each base candle's close, metrics,
rejected signals and how stop-loss/take-profit ambiguities were settled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data.ohlcv import OHLCV
from data.perp import PerpInputs
from data.timeframes import timeframe_ms
from engine.core import Core
from engine.drilldown import DrillDown, LowerSource
from engine.fills import FillModel
from engine.indicator_cache import IndicatorCache
from engine.market import MarketData
from engine.metrics import Metrics, compute_metrics
from engine.perp.funding import FundingSchedule
from engine.perp.leverage import MarginRules
from engine.portfolio import Portfolio
from engine.risk import Guards, Protections
from engine.strategy import Strategy
from engine.types import Exit, ExitCounts, Rejection, Trade


class NotEnoughData(ValueError):
    """The candles do not cover the strategy's warm-up plus at least one candle to trade."""


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """What to simulate besides the strategy and candles.

    Attributes:
        symbol: unified symbol, e.g. ``"BTC/USDT"``.
        timeframe: base (execution) timeframe of the candles.
        balance: starting balance, quote currency.
        fills: fees and slippage.
        leverage: notional / margin (1 = fully funded; above 1 on perpetuals only, checked
            by ``engine.perp.check_leverage`` where requests come in).
        maintenance_margin_rate: fraction of the notional (0.005 = 0.5 %) under which a
            leveraged position is liquidated (``engine.perp.liquidation``); unused at
            leverage 1.
        trade_start: open time (ms UTC) of the first candle the strategy trades; the candles
            before it are warm-up history. None: the first ``strategy.warmup_candles()``
            candles are warm-up.
        exchange: exchange id (for labels only).
        protections: the risk guards (``engine.risk``); None or all off: none.
    """

    symbol: str
    timeframe: str
    balance: float = 10_000.0
    fills: FillModel = field(default_factory=FillModel)
    leverage: float = 1.0
    maintenance_margin_rate: float = 0.0
    trade_start: int | None = None
    exchange: str = ""
    protections: Protections | None = None


@dataclass(slots=True)
class BacktestResult:
    """Everything a backtest produced.

    Attributes:
        candles: the traded candles (warm-up excluded), base timeframe.
        equity: equity at each traded candle's close, shape ``(len(candles),)``, quote.
        trades: closed trades in exit order (positions left open were closed at the last
            close with reason ``end_of_data``).
        final_equity: balance after the end-of-data closes, quote.
        exit_counts: ambiguous candles resolved by drill-down vs by the conservative fallback.
        warmup: number of warm-up candles before ``candles``.
        exits: every fill that reduced a position (partial and final), in fill order.
        guard_blocks: entries refused per risk guard the run had (0 when none refused).
        lookahead: indicators that changed when later candles were removed
            (``engine.research.lookahead``); empty when clean or not checked.
    """

    strategy: str
    params: dict[str, Any]
    config: BacktestConfig
    candles: OHLCV
    equity: np.ndarray
    trades: list[Trade]
    rejections: list[Rejection]
    exit_counts: ExitCounts
    metrics: Metrics
    final_equity: float
    warmup: int
    exits: list[Exit] = field(default_factory=list)
    guard_blocks: dict[str, int] = field(default_factory=dict)
    lookahead: list[Any] = field(default_factory=list)


def run_backtest(strategy: Strategy, candles: OHLCV, config: BacktestConfig,
                 lower: LowerSource | None = None,
                 progress: Callable[[float], None] | None = None, *,
                 lookahead: bool = False, cache: IndicatorCache | None = None,
                 cache_key: Any = None, perp: PerpInputs | None = None,
                 funding: tuple[np.ndarray, np.ndarray] | None = None) -> BacktestResult:
    """Run ``strategy`` over ``candles`` (base timeframe ``config.timeframe``).

    Args:
        strategy: a fresh strategy instance (its ``timeframes[0]`` should be the base).
        candles: sorted candles including the warm-up history.
        config: balance, fees, slippage, where trading starts.
        lower: lower-timeframe candles for drill-down; None = conservative fallback only.
        progress: called with the fraction done (0–1) about twenty times during the run.
        lookahead: also run the automatic look-ahead check of the indicators
            (``engine.research.lookahead.check_indicators``) into ``result.lookahead``.
        cache: indicator values shared between runs over the same candles (optimisation
            trials); ``cache_key`` names those candles (e.g. a data set id and index range).
        perp: open interest, funding rate and taker buy volume aligned to ``candles``
            (``data.perp_load``); None: unknown (NaN), CVD approximated from the candles.
        funding: the perpetual's funding settlements (times ms UTC, rates as fractions), paid
            by the positions open at each (``engine.perp.funding``); None: no funding (spot).

    Raises:
        NotEnoughData: when no candle is left to trade after the warm-up.
        TimeframeError: when an informative timeframe cannot be built from the base.
    """
    n = len(candles)
    if config.trade_start is not None:
        first = int(np.searchsorted(candles.timestamp, config.trade_start, side="left"))
    else:
        first = strategy.warmup_candles()
    if first >= n:
        raise NotEnoughData(
            f"{n} {config.timeframe} candles leave nothing to trade after a warm-up of "
            f"{first} candles; load more history"
        )
    market = MarketData(config.symbol, config.timeframe, candles, strategy.timeframes[1:],
                        cache=cache, cache_key=cache_key, perp=perp)
    market.prepare_steps()
    if first > 0:
        market.advance(first - 1)
    strategy.bind(market)
    portfolio = Portfolio(config.balance, config.symbol, config.leverage)
    guards = Guards.build(config.protections, timeframe_ms(config.timeframe))
    due = None if funding is None else FundingSchedule.for_candles(
        candles.timestamp, config.timeframe, funding[0], funding[1]).due
    core = Core(strategy, market, portfolio, config.fills, DrillDown(lower, config.timeframe),
                guards=guards, margin=MarginRules(config.leverage, config.maintenance_margin_rate),
                funding=due)

    advance, step = market.advance, core.step
    chunk = max(10_000, (n - first) // 20)
    for lo in range(first, n, chunk):
        for i in range(lo, min(n, lo + chunk)):
            advance(i)
            step(i)
        if progress is not None:
            progress(min(n, lo + chunk - first) / (n - first))

    last_close_time = int(candles.timestamp[-1]) + timeframe_ms(config.timeframe)
    core.close_all(float(candles.close[-1]), last_close_time, "end_of_data")
    equity = np.asarray(core.equity, dtype=np.float64)
    core.equity.clear()  # 32 bytes a candle as Python floats: freed before the metrics
    equity[-1] = portfolio.balance  # the last sample includes the end-of-data exit costs
    traded = candles.take(slice(first, n))
    leaks: list[Any] = []
    if lookahead:
        from engine.research.lookahead import check_indicators

        leaks = check_indicators(market, first)
    metrics = compute_metrics(portfolio.trades, equity, traded.timestamp, config.timeframe,
                              config.balance, traded.close, core.exposed_candles)
    return BacktestResult(
        strategy=strategy.name or type(strategy).__name__,
        params=dict(strategy.params),
        config=config,
        candles=traded,
        equity=equity,
        trades=portfolio.trades,
        rejections=core.rejections,
        exit_counts=core.exit_counts,
        metrics=metrics,
        final_equity=portfolio.balance,
        warmup=first,
        exits=portfolio.exits,
        guard_blocks=dict(guards.blocks) if guards is not None else {},
        lookahead=leaks,
    )
