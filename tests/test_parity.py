"""Parity: the same candles through a forward run and a backtest give exactly the same trades."""

from __future__ import annotations

import dataclasses

import pytest

from data.frames import OHLCV
from engine.backtest import BacktestConfig, run_backtest
from engine.fills import FillModel
from engine.forward.engine import RunSpec
from engine.registry import get_strategy
from tests.forward_helpers import forward_env, until

CASES = [
    ("sma_cross", {"fast": "5", "slow": "20", "stop_loss_pct": "0.3",
                   "take_profit_pct": "0.4"}, 2_000, 200, 800),
    ("mtf_trend", {"trend_period": "10", "fast": "5", "slow": "20", "stop_loss_pct": "0.3",
                   "take_profit_pct": "0.6"}, 8_000, 5_500, 2_000),
]


def comparable(trade):
    fields = dataclasses.asdict(trade)
    fields.pop("symbol")
    return fields


@pytest.mark.parametrize("name,params,count,cursor,replayed", CASES, ids=[c[0] for c in CASES])
async def test_forward_run_equals_backtest(tmp_path, name, params, count, cursor, replayed):
    async with forward_env(tmp_path, count=count, cursor=cursor) as env:
        record = await env.runtime.service.start_run(RunSpec(name, "BTC/USDT", timeframe="1m",
                                                             params=params))
        await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
        live = env.runtime.engine.runs[record.id]
        await env.ex.replay("BTC/USDT", "1m", replayed, ticks=0)
        last = int(env.series.ts[cursor + replayed - 1])
        await until(lambda: live.last_candle_ts == last, timeout=30, what="replay processed")
        forward_trades = await env.runtime.service.trades(record.id)
        forward_open = list(live.portfolio.positions)
        history_start = (await env.runtime.service.run_record(record.id)).history_start

    s = env.series
    first = int((s.ts == history_start).nonzero()[0][0])
    candles = OHLCV(s.ts[first:cursor + replayed], s.open[first:cursor + replayed],
                    s.high[first:cursor + replayed], s.low[first:cursor + replayed],
                    s.close[first:cursor + replayed], s.volume[first:cursor + replayed])
    strategy = get_strategy(name).cls(params, timeframe="1m")
    assert first == cursor - strategy.warmup_candles()  # the same warm-up start
    result = run_backtest(strategy, candles, BacktestConfig(
        "BTC/USDT", "1m", balance=10_000.0, fills=FillModel(10, 10, 0),
        trade_start=int(s.ts[cursor])))
    closed = [t for t in result.trades if t.exit_reason != "end_of_data"]
    still_open = [t for t in result.trades if t.exit_reason == "end_of_data"]

    assert len(forward_trades) >= 10, "too few trades to prove parity"
    assert {t.exit_reason for t in closed} >= {"stop_loss", "take_profit"}
    assert [comparable(t) for t in forward_trades] == [comparable(t) for t in closed]
    assert [(p.id, p.side, p.entry_price, p.size) for p in forward_open] == \
        [(t.id, t.side, t.entry_price, t.size) for t in still_open]
