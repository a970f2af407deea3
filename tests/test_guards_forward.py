"""Risk guards in a forward run against the exchange stand-in: the same blocked entries and
trades as a backtest over the same candles, one alert per trip and per lift, and the guards'
state stored with each candle and restored when the run resumes (here: while a lock is on)."""

from __future__ import annotations

import json
import sqlite3

from bot import embeds_views
from data.frames import OHLCV
from engine.backtest import BacktestConfig, run_backtest
from engine.events import GuardLifted, GuardTripped, SignalRejected
from engine.fills import FillModel
from engine.forward.engine import RunSpec
from engine.registry import get_strategy
from engine.risk import Protections
from engine.runtime import Runtime
from engine.service import PaperService
from engine.store.store import Store
from tests.forward_helpers import MINUTES, comparable, drain, settings_for, until
from tests.standins.exchange import CandleSeries, ExchangeStandin

PARAMS = {"stop_pct": "0.05", "take_pct": "0.3"}
PROTECT = {"cooldown": "3", "stoploss_guard": "3/30/20"}
CURSOR, TOTAL = 200, 400  # live candles [CURSOR, TOTAL)


async def test_forward_run_blocks_the_entries_a_backtest_blocks_across_a_restart(tmp_path):
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=TOTAL + 5,
                                       cursor=CURSOR)
    ts = series.ts
    async with ExchangeStandin([series]) as ex:
        settings = settings_for(tmp_path, ex, "bybit")
        async with Runtime(settings) as runtime:
            events = runtime.bus.subscribe()
            record = await runtime.service.start_run(RunSpec(
                "always_long", "BTC/USDT", timeframe="1m", params=PARAMS, protect=PROTECT))
            await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
            live = runtime.engine.runs[record.id]
            assert live.core.guards is not None
            for k in range(CURSOR, TOTAL - 100):  # stop while a guard blocks entries
                await ex.emit_candle("BTC/USDT", "1m")
                await until(lambda k=k: live.last_candle_ts == int(ts[k]), what="candle")
                if any(lock.guard == "stoploss_guard" for lock in live.core.guards.active()):
                    break
            locked_at = live.core.guards.to_state()
            in_force = tuple(lock.reason for lock in live.core.guards.active())
            [live_view] = await runtime.service.runs()
            rejections = list(live.core.rejections)
            emitted = drain(events)
        assert any(lock["lock"] for lock in locked_at["guards"].values()), "no lock to resume"
        # /forward list and paperbot runs: the guards kept and the locks in force, live …
        assert live_view.protections == {"stoploss_guard": "3/30/20", "cooldown": 3}
        assert live_view.locks == in_force and any(
            r.startswith("stoploss_guard: no entries until ") for r in in_force)
        # … and from the database while the engine is down
        store = await Store.open(settings.db_path, create=False)
        try:
            [stored_view] = await PaperService(settings, store=store).runs()
        finally:
            await store.close()
        assert stored_view.locks == in_force
        line = embeds_views.runs([stored_view]).fields[0].value.splitlines()
        assert line[1] == "🛡️ stoploss_guard=3/30/20 cooldown=3"
        assert line[2:] == [f"⛔ {reason}" for reason in in_force]

        async with Runtime(settings) as runtime:
            events = runtime.bus.subscribe()
            assert await runtime.engine.resume_all() == [record.id]
            live = runtime.engine.runs[record.id]
            assert live.core.guards.to_state() == locked_at  # restored as stored
            await ex.replay("BTC/USDT", "1m", TOTAL - ex.cursor("BTC/USDT", "1m"))
            await until(lambda: live.last_candle_ts == int(ts[TOTAL - 1]), timeout=30,
                        what="replay processed")
            rejections += live.core.rejections
            emitted += drain(events)
            trades = await runtime.service.trades(record.id)
            history_start = (await runtime.service.run_record(record.id)).history_start
            final_state = live.core.guards.to_state()
            run_row = await runtime.service.run_record(record.id)

    first = int((ts == history_start).nonzero()[0][0])
    candles = OHLCV(ts[first:TOTAL], series.open[first:TOTAL], series.high[first:TOTAL],
                    series.low[first:TOTAL], series.close[first:TOTAL],
                    series.volume[first:TOTAL])
    strategy = get_strategy("always_long", settings.strategy_dir).cls(PARAMS, timeframe="1m")
    result = run_backtest(strategy, candles, BacktestConfig(
        "BTC/USDT", "1m", balance=10_000.0, fills=FillModel(10, 10, 0),
        trade_start=int(ts[CURSOR]), protections=Protections.from_dict(PROTECT)))

    assert result.guard_blocks["cooldown"] > 0 and result.guard_blocks["stoploss_guard"] > 0
    assert [(r.ts, r.action, r.reason) for r in rejections] == \
        [(r.ts, r.action, r.reason) for r in result.rejections]
    closed = [t for t in result.trades if t.exit_reason != "end_of_data"]
    assert [comparable(t) for t in trades] == [comparable(t) for t in closed]
    # alerts: one per trip and one per lift, none per blocked signal
    assert not any(isinstance(e, SignalRejected) for e in emitted)
    tripped = [e for e in emitted if isinstance(e, GuardTripped)]
    lifted = [e for e in emitted if isinstance(e, GuardLifted)]
    assert {e.guard for e in tripped} == {"cooldown", "stoploss_guard"}
    assert len(tripped) < len(rejections)
    assert len(tripped) - len(lifted) == sum(final_state["reported"].values())
    for event in tripped:  # each names its guard and when it lifts
        assert event.reason.startswith(f"{event.guard}: no entries until ")
    # the run record holds what the run resolved and the guards' last state
    assert run_row.protections == {"stoploss_guard": "3/30/20", "cooldown": 3}
    with sqlite3.connect(settings.db_path) as conn:
        stored = json.loads(conn.execute("SELECT guard_state FROM runs").fetchone()[0])
    assert stored == final_state
