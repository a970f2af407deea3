"""Always-on: runs that cannot resume wait and retry; storage outages hold candles, never drop
or repeat them; the alerts that say so."""

from __future__ import annotations

import asyncio
import errno
import sqlite3

from engine.events import FeedLost, FeedRestored, StorageRestored, StorageUnavailable
from engine.forward.engine import RunSpec
from engine.runtime import Runtime
from tests.forward_helpers import (
    MINUTES,
    backtest_trades,
    comparable,
    drain,
    forward_env,
    settings_for,
    until,
)
from tests.standins.exchange import CandleSeries, ExchangeStandin

PARAMS = {"fast": "5", "slow": "20", "stop_loss_pct": "0.3", "take_profit_pct": "0.4"}
CURSOR = 200


def candle_closes(db) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute(
            "SELECT ts FROM equity WHERE kind='candle' ORDER BY ts")]


def stored_last(db) -> int | None:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT last_candle_ts FROM runs").fetchone()[0]


async def test_exchange_down_at_start_waits_then_resumes_with_the_backfill(tmp_path):
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=600, cursor=CURSOR)
    async with ExchangeStandin([series]) as ex:
        settings = settings_for(tmp_path, ex, "bybit")
        async with Runtime(settings) as runtime:  # an earlier life of the service
            record = await runtime.service.start_run(RunSpec("sma_cross", "BTC/USDT",
                                                             timeframe="1m", params=PARAMS))
            await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
            await ex.replay("BTC/USDT", "1m", 30)
            live = runtime.engine.runs[record.id]
            await until(lambda: live.last_candle_ts == int(series.ts[CURSOR + 29]))
        ex.fail_next_rest(100_000, status=503)  # the exchange is down: every request fails
        await ex.replay("BTC/USDT", "1m", 12)  # candles close while nobody listens
        async with Runtime(settings, resume_backoff=(0.2, 0.4)) as runtime:
            engine = runtime.engine
            events = runtime.bus.subscribe()
            started = asyncio.get_running_loop().time()
            assert await engine.resume_all() == [record.id]
            took = asyncio.get_running_loop().time() - started
            lost = [e for e in drain(events) if isinstance(e, FeedLost)]
            waiting = (await runtime.service.run(record.id))
            await until(lambda: engine.waiting[record.id].attempts >= 3, timeout=10,
                        what="a few failed retries")
            still = record.id in engine.waiting and record.id not in engine.runs
            ex.rest.failures.clear()  # the exchange is back
            await until(lambda: record.id in engine.runs, timeout=10, what="resumed")
            live = engine.runs[record.id]
            await until(lambda: live.consumer is not None)
            after = drain(events)
            await ex.replay("BTC/USDT", "1m", 5)  # and live candles flow again
            await until(lambda: live.last_candle_ts == int(series.ts[CURSOR + 46]))
            view = await runtime.service.run(record.id)
            trades = await runtime.service.trades(record.id)
            history_start = (await runtime.service.run_record(record.id)).history_start
    assert took < 3  # the outage is noticed at once, not after the REST retries
    assert len(lost) == 1 and lost[0].run_id == record.id and "cannot resume" in lost[0].detail
    assert waiting.status == "running" and waiting.state == "waiting for data"
    assert "503" in waiting.state_detail or "ExchangeNotAvailable" in waiting.state_detail
    assert still
    restored = [e for e in after if isinstance(e, FeedRestored)]
    assert [r.backfilled for r in restored] == [12]
    assert view.state == "running"
    assert candle_closes(settings.db_path) == [int(t) + 60_000
                                               for t in series.ts[CURSOR:CURSOR + 47]]
    closed, _ = backtest_trades(series, history_start, CURSOR + 47, "sma_cross", PARAMS, CURSOR)
    assert [comparable(t) for t in trades] == [comparable(t) for t in closed]


async def test_a_write_lock_beyond_the_busy_timeout_holds_candles_then_commits_each_once(
        tmp_path):
    async with forward_env(tmp_path, count=900, cursor=CURSOR) as env:
        engine, store = env.runtime.engine, env.runtime.store
        await store.db.execute("PRAGMA busy_timeout=200")  # fail fast while locked
        engine.guard.alert_after_s, engine.guard.backoff_max = 0.5, 0.3
        record = await env.runtime.service.start_run(RunSpec("sma_cross", "BTC/USDT",
                                                              timeframe="1m", params=PARAMS))
        await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
        live = engine.runs[record.id]
        await env.ex.replay("BTC/USDT", "1m", 100)
        await until(lambda: live.last_candle_ts == int(env.series.ts[CURSOR + 99]))
        locker = sqlite3.connect(env.settings.db_path, isolation_level=None, timeout=0)
        locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            await env.ex.replay("BTC/USDT", "1m", 300)
            await asyncio.sleep(1.5)
            held_db, held_memory = stored_last(env.settings.db_path), live.last_candle_ts
            alerts = drain(env.events)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        await until(lambda: live.last_candle_ts == int(env.series.ts[CURSOR + 399]),
                    timeout=30, what="the held candles processed")
        after = drain(env.events)
        trades = await env.runtime.service.trades(record.id)
        open_now = list(live.portfolio.positions)
        history_start = (await env.runtime.service.run_record(record.id)).history_start
    assert held_db == held_memory == int(env.series.ts[CURSOR + 99])  # nothing skipped ahead
    assert [type(e) for e in alerts if isinstance(e, StorageUnavailable)] == [StorageUnavailable]
    assert "locked" in next(e for e in alerts if isinstance(e, StorageUnavailable)).detail
    assert sum(isinstance(e, StorageRestored) for e in after) == 1
    assert candle_closes(env.settings.db_path) == [int(t) + 60_000
                                                   for t in env.series.ts[CURSOR:CURSOR + 400]]
    closed, still_open = backtest_trades(env.series, history_start, CURSOR + 400,
                                         "sma_cross", PARAMS, CURSOR)
    assert len(trades) >= 10
    assert [comparable(t) for t in trades] == [comparable(t) for t in closed]
    assert [(p.id, p.entry_price) for p in open_now] == \
        [(t.id, t.entry_price) for t in still_open]


async def test_a_full_disk_is_retried_until_writes_succeed_and_nothing_drifts(tmp_path):
    async with forward_env(tmp_path, count=700, cursor=CURSOR) as env:
        engine, store = env.runtime.engine, env.runtime.store
        engine.guard.alert_after_s, engine.guard.backoff_max = 0.3, 0.2
        record = await env.runtime.service.start_run(RunSpec("sma_cross", "BTC/USDT",
                                                              timeframe="1m", params=PARAMS))
        await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
        live = engine.runs[record.id]
        full = asyncio.Event()
        execute = store.db.execute

        def writes_fail(sql, *args, **kwargs):
            if full.is_set() and sql.split()[0].upper() in ("INSERT", "UPDATE", "BEGIN",
                                                            "COMMIT", "DELETE"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return execute(sql, *args, **kwargs)

        store.db.execute = writes_fail
        await env.ex.replay("BTC/USDT", "1m", 60)
        await until(lambda: live.last_candle_ts == int(env.series.ts[CURSOR + 59]))
        full.set()
        await env.ex.replay("BTC/USDT", "1m", 200)
        await asyncio.sleep(1.0)
        held = stored_last(env.settings.db_path)
        refused = None
        try:
            await env.runtime.service.close_position(record.id, 1, "cli")
        except Exception as exc:
            refused = str(exc)
        alerts = drain(env.events)
        full.clear()  # space freed
        await until(lambda: live.last_candle_ts == int(env.series.ts[CURSOR + 259]),
                    timeout=30, what="the held candles processed")
        trades = await env.runtime.service.trades(record.id)
        after = drain(env.events)
        history_start = (await env.runtime.service.run_record(record.id)).history_start
    assert held == int(env.series.ts[CURSOR + 59])
    assert refused is not None and "cannot take writes" in refused
    unavailable = [e for e in alerts if isinstance(e, StorageUnavailable)]
    assert len(unavailable) == 1 and "No space left" in unavailable[0].detail
    assert any(isinstance(e, StorageRestored) for e in after)
    assert candle_closes(env.settings.db_path) == [int(t) + 60_000
                                                   for t in env.series.ts[CURSOR:CURSOR + 260]]
    closed, _ = backtest_trades(env.series, history_start, CURSOR + 260, "sma_cross",
                                PARAMS, CURSOR)
    assert [comparable(t) for t in trades] == [comparable(t) for t in closed]
