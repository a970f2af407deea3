"""Forward runs against the local exchange stand-in: trades, events, feed faults, ticks."""

from __future__ import annotations

import numpy as np
import pytest

from engine.events import FeedLost, FeedRestored, RunStarted, TradeClosed, TradeOpened
from engine.forward.engine import RunSpec
from tests.forward_helpers import drain, forward_env, until


async def processed_closes(env, run_id: str) -> list[int]:
    """Close times of every processed candle, from the equity rows written with each step."""
    async with env.runtime.store.db.execute(
            "SELECT ts FROM equity WHERE run_id=? AND kind='candle' ORDER BY rowid",
            (run_id,)) as cur:
        return [row[0] for row in await cur.fetchall()]


async def start(env, strategy="sma_cross", params=None, **spec):
    record = await env.runtime.service.start_run(RunSpec(
        strategy=strategy, symbol="BTC/USDT", timeframe="1m",
        params=params or {"fast": "5", "slow": "20"}, **spec))
    await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
    return record


async def test_full_run_opens_and_closes_trades_with_events(tmp_path):
    async with forward_env(tmp_path) as env:
        run = await start(env)
        await env.ex.replay("BTC/USDT", "1m", 300, ticks=2)
        last = int(env.series.ts[499])
        live = env.runtime.engine.runs[run.id]
        await until(lambda: live.last_candle_ts == last, what="all candles processed")
        events = drain(env.events)
        stored = await env.runtime.service.trades(run.id)
    assert isinstance(events[0], RunStarted) and events[0].run_id == run.id
    opened = [e for e in events if isinstance(e, TradeOpened)]
    closed = [e for e in events if isinstance(e, TradeClosed)]
    assert len(opened) >= 3 and len(closed) >= 3
    assert [e.trade.id for e in closed] == [t.id for t in stored]
    for event in opened:  # entries fill at the signal candle's close, as in a backtest
        i = int(np.searchsorted(env.series.ts, event.position.entry_time - 60_000))
        assert event.position.entry_price == env.series.close[i]
        assert event.position.entry_fee == pytest.approx(
            event.position.entry_price * event.position.size * 0.001)
    assert all(t.pnl == pytest.approx((t.exit_price - t.entry_price) * t.size - t.fees)
               for t in stored)


async def test_dropped_connection_is_survived_without_gap_or_repeat(tmp_path):
    async with forward_env(tmp_path) as env:
        run = await start(env)
        await env.ex.replay("BTC/USDT", "1m", 50)
        live = env.runtime.engine.runs[run.id]
        await until(lambda: live.last_candle_ts == int(env.series.ts[249]))
        await env.ex.drop_connections()
        await env.ex.replay("BTC/USDT", "1m", 30)  # sent while the client is away: lost
        await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
        await env.ex.replay("BTC/USDT", "1m", 20)
        await until(lambda: live.last_candle_ts == int(env.series.ts[299]))
        closes = await processed_closes(env, run.id)
        events = drain(env.events)
    expected = [int(t) + 60_000 for t in env.series.ts[200:300]]
    assert closes == expected  # every candle once, in order
    assert any(isinstance(e, FeedLost) for e in events)
    restored = [e for e in events if isinstance(e, FeedRestored)]
    assert restored and sum(e.backfilled for e in restored) >= 1


async def test_silent_stall_is_detected_and_backfilled(tmp_path):
    async with forward_env(tmp_path, feed_timeout_s=0.5) as env:
        run = await start(env)
        live = env.runtime.engine.runs[run.id]
        await env.ex.replay("BTC/USDT", "1m", 10)
        await until(lambda: live.last_candle_ts == int(env.series.ts[209]))
        env.ex.stall(1.5)
        await env.ex.replay("BTC/USDT", "1m", 15)  # dropped by the stalled server
        await until(lambda: any(isinstance(e, FeedLost) for e in list(env.events._queue)),
                    what="feed lost")
        await until(lambda: live.last_candle_ts == int(env.series.ts[224]), timeout=15,
                    what="backfill after the stall")
        closes = await processed_closes(env, run.id)
    assert closes == [int(t) + 60_000 for t in env.series.ts[200:225]]


async def test_malformed_duplicate_and_out_of_order_messages_are_skipped(tmp_path):
    async with forward_env(tmp_path) as env:
        run = await start(env)
        live = env.runtime.engine.runs[run.id]
        feed = env.runtime.engine.hub.feeds[0]
        await env.ex.replay("BTC/USDT", "1m", 10)
        await env.ex.send_raw("{not json")
        await env.ex.send_raw('{"topic": "kline.1.BTCUSDT", "data": [{"start": "x"}]}')
        await env.ex.resend_last_confirmed("BTC/USDT", "1m")
        await env.ex.send_confirmed("BTC/USDT", "1m", 205)  # an old candle, out of order
        await env.ex.replay("BTC/USDT", "1m", 10)
        await until(lambda: live.last_candle_ts == int(env.series.ts[219]))
        closes = await processed_closes(env, run.id)
        assert feed.stats.malformed == 2
        assert feed.stats.duplicates == 2
        assert feed.connected
    assert closes == [int(t) + 60_000 for t in env.series.ts[200:220]]


async def test_stop_loss_hit_by_a_tick_closes_at_once(tmp_path):
    async with forward_env(tmp_path) as env:
        run = await start(env, strategy="always_long", params={"stop_pct": "0.5",
                                                                "take_pct": "5"})
        live = env.runtime.engine.runs[run.id]
        candle = await env.ex.emit_candle("BTC/USDT", "1m")
        await until(lambda: bool(live.portfolio.positions), what="position opened")
        position = live.portfolio.positions[0]
        assert position.stop_loss == pytest.approx(candle.close * 0.995)
        drain(env.events)
        await env.ex.push_tick("BTC/USDT", "1m", position.stop_loss * 0.999)
        events: list = []
        await until(lambda: bool(events.extend(drain(env.events))) or any(
            isinstance(e, TradeClosed) for e in events), timeout=10, what="tick exit event")
        assert not live.portfolio.positions
        assert live.last_candle_ts == candle.ts  # the next candle has not closed
        trades = await env.runtime.service.trades(run.id)
    closed = [e for e in events if isinstance(e, TradeClosed)]
    assert len(closed) == 1 and closed[0].trade.exit_reason == "stop_loss"
    assert closed[0].trade.exit_price == pytest.approx(position.stop_loss)  # 0 bp slippage
    assert trades[0].exit_reason == "stop_loss"


async def test_unknown_symbol_and_bad_timeframe_are_refused(tmp_path):
    from engine.errors import ServiceError

    async with forward_env(tmp_path) as env:
        with pytest.raises(ServiceError, match="unknown symbol DOGE/USDT on bybit"):
            await env.runtime.service.start_run(RunSpec("sma_cross", "DOGE/USDT"))
        with pytest.raises(ServiceError, match="bybit has no 7m kline stream"):
            await env.runtime.service.start_run(RunSpec("sma_cross", "BTC/USDT",
                                                        timeframe="7m"))
        assert await env.runtime.service.runs() == []
