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
    ("trend_scaler", {"fast": "5", "slow": "20", "breakout": "10", "atr_period": "14",
                      "atr_stop": "2", "max_hold": "30"}, 2_000, 200, 1_200),
    ("donchian_breakout", {"entry_period": "20", "exit_period": "10", "atr_period": "14",
                           "atr_stop": "3", "trail_atr": "2"}, 2_000, 200, 1_000),
]


EXPECTED_REASONS = {"sma_cross": {"stop_loss", "take_profit"},
                    "mtf_trend": {"stop_loss", "take_profit"},
                    "trend_scaler": {"take_profit", "stop_loss", "time_exit"},
                    "donchian_breakout": {"trailing_stop", "signal"}}


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
        forward_exits = await env.runtime.store.exits(record.id)
        forward_open = list(live.portfolio.positions)
        history_start = (await env.runtime.service.run_record(record.id)).history_start

    s = env.series
    strategy = get_strategy(name).cls(params, timeframe="1m")
    first = cursor - strategy.warmup_candles()  # the run's warm-up start …
    window = int((s.ts == history_start).nonzero()[0][0])
    # … or, once its rolling window moved, a later start of at least history_candles()
    assert window == first or cursor + replayed - window >= strategy.history_candles()
    candles = OHLCV(s.ts[first:cursor + replayed], s.open[first:cursor + replayed],
                    s.high[first:cursor + replayed], s.low[first:cursor + replayed],
                    s.close[first:cursor + replayed], s.volume[first:cursor + replayed])
    result = run_backtest(strategy, candles, BacktestConfig(
        "BTC/USDT", "1m", balance=10_000.0, fills=FillModel(10, 10, 0),
        trade_start=int(s.ts[cursor])))
    closed = [t for t in result.trades if t.exit_reason != "end_of_data"]
    still_open = [t for t in result.trades if t.exit_reason == "end_of_data"]
    parts = [e for e in result.exits if e.reason != "end_of_data"]

    assert len(forward_trades) >= 10, "too few trades to prove parity"
    assert {t.exit_reason for t in closed} >= EXPECTED_REASONS[name]
    if name == "trend_scaler":  # scale-outs and break-even moves really happened
        assert len(parts) > len(closed) and any(e.size < t.size for e in parts
                                                for t in closed if t.id == e.position_id)
    assert [comparable(t) for t in forward_trades] == [comparable(t) for t in closed]
    assert forward_exits == parts  # every part: time, price, size, reason, pnl, fee
    assert [(p.id, p.side, p.entry_price, p.initial_size) for p in forward_open] == \
        [(t.id, t.side, t.entry_price, t.size) for t in still_open]
