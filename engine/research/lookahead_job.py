"""``paperbot lookahead`` / ``/lookahead`` as a job: load the candles, run the full check."""

from __future__ import annotations

from collections.abc import Callable

from data.loader import CandleLoader, MissingDataError
from data.timeframes import TimeframeError, timeframe_ms
from engine import formatting as fmt
from engine.backtest import BacktestConfig, NotEnoughData
from engine.backtest_request import BacktestRequest, check_request, date_range, request_fills
from engine.errors import ServiceError
from engine.registry import build_strategy
from engine.research.lookahead import LookaheadReport, truncation_check
from engine.settings import Settings


def run_lookahead(request: BacktestRequest, settings: Settings, cuts: int = 10,
                  progress: Callable[[str], None] | None = None) -> LookaheadReport:
    """Backtest ``request`` on its candles and on ``cuts`` truncated copies (blocking).

    Raises:
        ServiceError: bad input or missing candles.
    """
    say = progress or (lambda _text: None)
    strategy, timeframe, symbol, exchange = check_request(request, settings)
    start, end = date_range(request.start, request.end)
    step = timeframe_ms(timeframe)
    load_from = None if start is None else start - strategy.warmup_candles() * step
    loader = CandleLoader(settings.data_dir)
    say("loading candles")
    try:
        candles, _ = loader.load(exchange, symbol, timeframe, load_from, end)
    except MissingDataError as exc:
        raise ServiceError(str(exc)) from None
    if len(candles) == 0:
        raise ServiceError(f"no {symbol} {timeframe} candles for {exchange} in that span")
    fills = request_fills(request, settings)
    config = BacktestConfig(symbol, timeframe, settings.balance if request.balance is None
                            else request.balance, fills, trade_start=start, exchange=exchange)
    lower = loader.lower_source(exchange, symbol, int(candles.timestamp[0]),
                                int(candles.timestamp[-1]) + step)

    def make():
        return build_strategy(request.strategy, request.params, timeframe,
                              settings.strategy_dir)

    try:
        return truncation_check(make, candles, config, lower, cuts, progress=say)
    except (NotEnoughData, TimeframeError) as exc:
        raise ServiceError(str(exc)) from None


def lookahead_summary(report: LookaheadReport) -> str:
    """The text ``paperbot lookahead`` prints."""
    params = " ".join(f"{k}={v}" for k, v in report.params.items())
    lines = [f"look-ahead check · {report.strategy} on {report.symbol} {report.timeframe} · "
             f"{report.candles:,} candles, {report.trades} trades · {params}"]
    for cut in report.cuts:
        state = "ok" if cut.mismatch is None else f"DIFFERS: {cut.mismatch}"
        lines.append(f"  cut at {fmt.iso(cut.cut_time)} UTC: {cut.compared} trades compared, "
                     f"{state}")
    for finding in report.indicators:
        lines.append(f"  {finding.describe()}")
    lines.append("result: clean — no trade and no indicator changed without the future"
                 if report.clean else
                 "result: LOOK-AHEAD — the strategy uses candles it could not have seen")
    return "\n".join(lines)
