"""The run lifecycle (DESIGN §4c): paused runs manage exits only, a raising strategy pauses its
run, stopping never strands a position, closes work on any run, the kill switch."""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap

import pytest

from engine.errors import ServiceError
from engine.events import EngineError, RunPaused, TradeClosed
from engine.forward.engine import RunSpec
from engine.runtime import Runtime
from engine.store.schema import MIGRATIONS
from engine.store.store import Store
from tests.forward_helpers import MINUTES, drain, forward_env, settings_for, until
from tests.standins.exchange import CandleSeries, ExchangeStandin

FLIP = {"stop_pct": "0.15", "take_pct": "0.15"}  # always_long: a trade every few candles

BOOM = textwrap.dedent('''
    from engine.strategy import Strategy
    from engine.types import Signal

    class Boom(Strategy):
        """Long once with wide levels, then raises at every candle."""
        timeframes = ["1m"]

        def on_candle(self, data, portfolio):
            if not portfolio.positions and not portfolio.trades:
                close = data.base.close[-1]
                return [Signal.open_long(size=0.05, stop_loss=close * 0.998,
                                         take_profit=close * 1.002)]
            return [1 / 0]
''')


async def emit_until(env, check, limit: int = 400) -> None:
    for _ in range(limit):
        if check():
            return
        await env.ex.emit_candle("BTC/USDT", "1m")
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def processed(env, live) -> None:
    series = env.series
    await until(lambda: live.last_candle_ts == int(series.ts[env.ex.cursor("BTC/USDT",
                                                                             "1m") - 1]))


async def test_a_paused_run_manages_exits_only_then_resumes(tmp_path):
    async with forward_env(tmp_path) as env:
        service = env.runtime.service
        record = await service.start_run(RunSpec("always_long", "BTC/USDT", timeframe="1m",
                                                 params=FLIP))
        await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
        live = env.runtime.engine.runs[record.id]
        await emit_until(env, lambda: bool(live.portfolio.positions))
        await processed(env, live)
        paused = await service.pause_run(record.id, "cli")
        held = live.portfolio.positions[0].id
        await emit_until(env, lambda: not live.portfolio.positions)  # its exit still fills
        await env.ex.replay("BTC/USDT", "1m", 10)
        await processed(env, live)
        still_flat = not live.portfolio.positions  # no entry while paused
        blocked = [r for r in live.core.rejections if r.action == "open_long"]
        resumed = await service.resume_run(record.id, "cli")
        await env.ex.replay("BTC/USDT", "1m", 2)
        await processed(env, live)
        trades = await service.trades(record.id)
        events = drain(env.events)
        stored = sqlite3.connect(env.settings.db_path).execute(
            "SELECT action FROM audit WHERE run_id=? AND action LIKE 'run_%'",
            (record.id,)).fetchall()
    assert paused.status == "paused" and paused.state == "paused"
    assert [t.id for t in trades][-1] == held and still_flat
    assert blocked and all("run paused" in r.reason for r in blocked)
    assert not any(e.reason.startswith("run paused") for e in events
                   if type(e).__name__ == "SignalRejected")  # counted, not alerted
    assert resumed.status == "running" and live.portfolio.positions  # entries again
    assert [type(e) for e in events].count(RunPaused) == 1
    assert [r[0] for r in stored] == ["run_start", "run_paused", "run_running"]


async def test_a_raising_strategy_pauses_its_run_and_its_position_keeps_its_levels(tmp_path):
    async with forward_env(tmp_path) as env:
        (tmp_path / "strategies" / "boom.py").write_text(BOOM)
        service = env.runtime.service
        record = await service.start_run(RunSpec("boom", "BTC/USDT", timeframe="1m"))
        await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
        live = env.runtime.engine.runs[record.id]
        await emit_until(env, lambda: bool(live.portfolio.positions))
        await env.ex.emit_candle("BTC/USDT", "1m")  # on_candle raises now
        await processed(env, live)
        view = await service.run(record.id)
        await emit_until(env, lambda: not live.portfolio.positions)  # the stop or target fills
        [trade] = await service.trades(record.id)
        events = drain(env.events)
        calls_before = live.core.skip_strategy
        await service.resume_run(record.id, "cli")  # retried: it raises again → paused again
        await env.ex.emit_candle("BTC/USDT", "1m")
        await until(lambda: live.paused is not None and live.core.skip_strategy)
    errors = [e for e in events if isinstance(e, EngineError)]
    assert len(errors) == 1 and not errors[0].fatal
    assert errors[0].message.startswith("strategy boom raised ZeroDivisionError at boom.py:")
    assert errors[0].message.endswith(": division by zero")
    assert view.status == "paused" and view.state_detail == errors[0].message
    assert trade.exit_reason in ("stop_loss", "take_profit") and calls_before
    assert sum(isinstance(e, RunPaused) and e.error for e in events) == 1


async def test_stop_never_strands_positions(tmp_path):
    async with forward_env(tmp_path) as env:
        service = env.runtime.service
        record = await service.start_run(RunSpec("always_long", "BTC/USDT", timeframe="1m",
                                                 params={"stop_pct": "5", "take_pct": "5"}))
        await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
        live = env.runtime.engine.runs[record.id]
        await emit_until(env, lambda: bool(live.portfolio.positions))
        await processed(env, live)
        with pytest.raises(ServiceError, match="holds 1 open position: stop and close them"):
            await service.stop_run(record.id, "cli")
        kept = await service.stop_run(record.id, "cli", close_positions=False)
        still_live = record.id in env.runtime.engine.runs
        stopped = await service.stop_run(record.id, "cli", close_positions=True)
        trades = await service.trades(record.id)
        gone = record.id not in env.runtime.engine.runs
        with pytest.raises(ServiceError, match="already stopped"):
            await service.stop_run(record.id, "cli")
    assert kept.status == "paused" and still_live
    assert stopped.status == "stopped" and gone
    assert [t.exit_reason for t in trades] == ["manual"]


async def test_close_on_a_stopped_run_with_stranded_positions_and_the_kill_switch(tmp_path):
    async with forward_env(tmp_path) as env:
        service, engine = env.runtime.service, env.runtime.engine
        specs = [RunSpec("always_long", "BTC/USDT", timeframe="1m",
                         params={"stop_pct": "5", "take_pct": "5"}) for _ in range(3)]
        records = [await service.start_run(spec) for spec in specs]
        await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
        runs = [engine.runs[r.id] for r in records]
        await emit_until(env, lambda: all(r.portfolio.positions for r in runs))
        for run in runs:
            await processed(env, run)
        # an old paperbot stopped run 0 without closing its position (stranded)
        await engine.detach(runs[0])
        await env.runtime.store.set_status(records[0].id, "stopped", "stopped by user", "cli")
        summary = await service.pnl_summary()
        every = await service.positions()
        trade = await service.close_position(records[0].id, 1, "cli")
        after_close = (await service.run(records[0].id)).status
        report = await service.panic("cli")
        views = [await service.run(r.id) for r in records]
        closed_events = [e for e in drain(env.events) if isinstance(e, TradeClosed)]
    assert len(every) == 3 and {v.run_id for v in every} == {r.id for r in records}
    assert summary.open_positions == 3 and len(summary.views) == 3
    assert summary.equity == pytest.approx(sum(v.equity for v in summary.views))
    assert trade.exit_reason == "manual" and after_close == "paused"
    assert sorted(report.paused) == sorted(r.id for r in records[1:])
    assert sorted(rid for rid, _ in report.closed) == sorted(r.id for r in records[1:])
    assert report.realised_pnl == pytest.approx(sum(t.pnl for _, t in report.closed))
    assert [v.status for v in views] == ["paused"] * 3 and not report.failed
    assert all(v.open_positions == 0 for v in views) and len(closed_events) == 3


async def test_a_paused_run_stays_paused_across_a_restart(tmp_path):
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=600, cursor=200)
    async with ExchangeStandin([series]) as ex:
        settings = settings_for(tmp_path, ex, "bybit")
        async with Runtime(settings) as runtime:
            record = await runtime.service.start_run(RunSpec(
                "always_long", "BTC/USDT", timeframe="1m", params=FLIP))
            await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
            await runtime.service.pause_run(record.id, "cli")
        async with Runtime(settings) as again:
            await again.engine.resume_all()
            live = again.engine.runs[record.id]
            await ex.replay("BTC/USDT", "1m", 5)
            await until(lambda: live.last_candle_ts == int(series.ts[204]), timeout=10)
            view = await again.service.run(record.id)
    assert view.status == "paused" and not live.portfolio.positions  # still no entries
    assert live.paused == "paused by user"


async def test_an_older_database_migrates_to_the_lifecycle_schema(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    for script in MIGRATIONS[:3]:  # a v3 database with a run and a position
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 3")
    conn.execute("INSERT INTO runs (id, strategy, params, symbol, timeframe, timeframes, "
                 "exchange, market_type, starting_balance, fee_bps, maker_fee_bps, "
                 "slippage_bps, status, created_at, updated_at, balance) VALUES ('abc123', "
                 "'sma_cross', '{}', 'BTC/USDT', '1h', '[\"1h\"]', 'bybit', 'spot', 1000, 10, "
                 "10, 0, 'running', 1, 1, 990)")
    conn.execute("INSERT INTO positions (run_id, id, side, size, entry_price, entry_time, "
                 "entry_fee, margin) VALUES ('abc123', 1, 'long', 0.1, 100, 1, 0.01, 10)")
    conn.commit()
    conn.close()
    store = await Store.open(db)
    try:
        [record] = await store.runs()
        [position] = await store.positions("abc123")
        await store.set_status("abc123", "paused", "kill switch", "cli")
        paused = await store.run("abc123")
    finally:
        await store.close()
    assert record.balance == 990 and position.initial_size == 0.1
    assert paused.status == "paused" and paused.stop_reason == "kill switch"
    check = sqlite3.connect(db).execute("PRAGMA foreign_key_check").fetchall()
    assert check == []
