"""Shared set-up of forward-run tests: the exchange stand-in, settings, a runtime, waits."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.runtime import Runtime
from engine.settings import Settings, load_settings
from tests.helpers import SAMPLE_DATA
from tests.standins.exchange import CandleSeries, ExchangeStandin

MINUTES = SAMPLE_DATA / "binance_BTC-USDT_1m.parquet"

#: A strategy that goes long on its first candle with a stop-loss and take-profit in percent.
ALWAYS_LONG = textwrap.dedent('''
    from engine.strategy import Strategy
    from engine.types import Signal

    class AlwaysLong(Strategy):
        """Long whenever flat, with a stop-loss and take-profit in percent of the close."""
        timeframes = ["1m"]
        params = {"stop_pct": 0.5, "take_pct": 0.5}

        def on_candle(self, data, portfolio):
            if portfolio.positions:
                return None
            close = data.base.close[-1]
            return [Signal.open_long(50, stop_loss=close * (1 - self.p.stop_pct / 100),
                                     take_profit=close * (1 + self.p.take_pct / 100))]
''')


@dataclass
class Env:
    """What a forward test works with."""

    ex: ExchangeStandin
    series: CandleSeries
    runtime: Runtime
    settings: Settings
    events: asyncio.Queue


def settings_for(tmp_path: Path, ex: ExchangeStandin, venue: str, **overrides) -> Settings:
    """Settings pointing the live exchange at the stand-in."""
    strategies = tmp_path / "strategies"
    strategies.mkdir(exist_ok=True)
    (strategies / "always_long.py").write_text(ALWAYS_LONG)
    values = dict(db_path=tmp_path / "runs.db", data_dir=tmp_path / "cache",
                  strategy_dir=strategies, live_exchange=venue, exchange_rest_url=ex.rest_url,
                  exchange_ws_url=ex.ws_url(venue), feed_timeout_s=5.0, fee_bps=10.0,
                  slippage_bps=0.0)
    values.update(overrides)
    return load_settings(**values)


@asynccontextmanager
async def forward_env(tmp_path: Path, *, start: int = 0, count: int = 1500, cursor: int = 200,
                      venue: str = "bybit", **overrides) -> AsyncIterator[Env]:
    """Stand-in serving ``count`` real 1m candles from row ``start``, closed up to ``cursor``."""
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", start=start, count=count,
                                       cursor=cursor)
    async with ExchangeStandin([series], binance_ping_interval=1.0) as ex:
        settings = settings_for(tmp_path, ex, venue, **overrides)
        async with Runtime(settings) as runtime:
            yield Env(ex, series, runtime, settings, runtime.bus.subscribe())


async def until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait (bounded) until ``check()`` is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def connected_and_idle(live, timeout: float = 20.0) -> None:
    """Wait until ``live`` (a ``ForwardRun``) has handled its feed's "connected" status (whose
    backfill reads the exchange's clock: on a loaded machine it could otherwise run after a
    replay has begun and take candles over REST that the test meant to send live)."""
    await until(lambda: live.feed is not None and live.feed.connected
                and live.subscription.queue.empty() and not live.lock.locked(),
                timeout=timeout, what="the run's connect handled")


def drain(queue: asyncio.Queue) -> list:
    """Everything queued so far."""
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def backtest_trades(series: CandleSeries, history_start: int, end: int, name: str,
                    params: dict[str, str], trade_start_index: int) -> tuple[list, list]:
    """(closed trades, trades still open at the end) of a backtest of ``name`` over the
    series' candles ``[history_start, end)`` (row indices), trading from
    ``trade_start_index`` — what a forward run over the same candles must reproduce."""
    from data.frames import OHLCV
    from engine.backtest import BacktestConfig, run_backtest
    from engine.fills import FillModel
    from engine.registry import get_strategy

    s = series
    first = int((s.ts == history_start).nonzero()[0][0])
    candles = OHLCV(s.ts[first:end], s.open[first:end], s.high[first:end], s.low[first:end],
                    s.close[first:end], s.volume[first:end])
    strategy = get_strategy(name).cls(params, timeframe=s.timeframe)
    result = run_backtest(strategy, candles, BacktestConfig(
        s.symbol, s.timeframe, balance=10_000.0, fills=FillModel(10, 10, 0),
        trade_start=int(s.ts[trade_start_index])))
    closed = [t for t in result.trades if t.exit_reason != "end_of_data"]
    still_open = [t for t in result.trades if t.exit_reason == "end_of_data"]
    return closed, still_open


def comparable(trade) -> dict:
    """A trade's fields without the symbol and the recovery flag (for parity checks)."""
    import dataclasses

    fields = dataclasses.asdict(trade)
    fields.pop("symbol")
    fields.pop("settled_on_recovery")
    return fields
