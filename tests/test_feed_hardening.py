"""One odd frame never kills a feed: parsing guards, candle/tick sanity checks, supervision.

Feeds are driven through the exchange stand-in (real websockets, Bybit v5 and Binance kline
frames); the forward-run tests use the whole runtime with the ``always_long`` strategy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from data.history import fetch_ohlcv_range
from data.live.feed import FeedStatus, LiveFeed, Subscription
from data.live.messages import BinanceProtocol, BybitProtocol, KlineUpdate, MalformedMessage
from data.live.sanity import (
    MAX_TICK_MOVE,
    TickRange,
    candle_problem,
    seen_after,
    tick_problem,
    valid_rows,
)
from data.ohlcv import Candle
from engine.events import FeedLost, FeedRestored, TradeClosed
from engine.forward.engine import RunSpec
from tests.forward_helpers import MINUTES, drain, forward_env, until
from tests.helpers import MIN, T0
from tests.standins.exchange import CandleSeries, ExchangeStandin
from tests.standins.exchange_ws import binance_message, bybit_message

TOPIC = "kline.1.BTCUSDT"
WAIT = 5.0  # seconds: bound of every wait on a queue


# -- helpers -----------------------------------------------------------------------------------

@pytest.fixture
async def ex() -> AsyncIterator[ExchangeStandin]:
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=400, cursor=200)
    async with ExchangeStandin([series], binance_ping_interval=1.0) as standin:
        yield standin


async def open_feed(ex: ExchangeStandin, venue: str = "bybit",
                    **options: Any) -> tuple[LiveFeed, Subscription]:
    """A connected feed subscribed to BTC/USDT 1m, its ``FeedStatus(True)`` consumed."""
    protocol = BybitProtocol() if venue == "bybit" else BinanceProtocol()
    feed = LiveFeed(ex.ws_url(venue), protocol, silence_timeout=5.0, backoff_initial=0.05,
                    **options)
    sub = await feed.subscribe("BTC/USDT", "1m")
    status = await next_item(sub)
    assert isinstance(status, FeedStatus) and status.connected
    return feed, sub


async def next_item(sub: Subscription) -> KlineUpdate | FeedStatus:
    return await asyncio.wait_for(sub.queue.get(), WAIT)


def state_of(series: CandleSeries, index: int) -> dict[str, float]:
    c = series.candle(index)
    return {"open": c.open, "high": c.high, "low": c.low, "close": c.close, "volume": c.volume}


def bybit_frame(series: CandleSeries, index: int, *, confirm: bool = True,
                **item: Any) -> str:
    """A Bybit kline push of candle ``index`` with fields of its data item replaced."""
    c = series.candle(index)
    msg = bybit_message(series, index, state_of(series, index), confirm, c.ts + 60_000)
    msg["data"][0].update(item)
    return json.dumps(msg)


async def assert_next_is_candle(sub: Subscription, series: CandleSeries, index: int) -> None:
    """The next queued item is the confirmed candle ``index`` exactly as stored."""
    update = await next_item(sub)
    assert isinstance(update, KlineUpdate) and update.closed
    c = series.candle(index)
    assert update.candle == Candle(c.ts, c.open, c.high, c.low, c.close, c.volume)


# -- one odd frame is skipped, the connection stays up -----------------------------------------

async def test_bad_bybit_frames_are_skipped_without_reconnecting(ex, caplog):
    series = ex.get("BTC/USDT", "1m")
    feed, sub = await open_feed(ex)
    try:
        nxt = series.cursor  # every bad frame claims to be the next candle, confirmed
        c = series.candle(nxt)
        malformed = [
            bybit_frame(series, nxt, timestamp="abc"),
            bybit_frame(series, nxt, start="x"),
            "[" * 100_000 + "]" * 100_000,
        ]
        invalid = [
            bybit_frame(series, nxt, open="NaN"),
            bybit_frame(series, nxt, low="-5"),
            bybit_frame(series, nxt, high=str(c.low * 0.99)),  # high below low
            bybit_frame(series, nxt, close=str(c.high * 1.01)),  # close above high
            bybit_frame(series, nxt, volume="inf"),
            bybit_frame(series, nxt, start=c.ts + 1_000),  # off the 1m grid
        ]
        with caplog.at_level(logging.WARNING, logger="data.live.feed"):
            for frame in malformed + invalid:
                assert await ex.send_raw(frame, venue="bybit") == 1
                await ex.emit_candle("BTC/USDT", "1m")
                await assert_next_is_candle(sub, series, nxt)
                nxt += 1
        assert feed.stats.malformed == len(malformed)
        assert feed.stats.invalid == len(invalid)
        assert feed.connected and feed.stats.connects == 1 and len(ex.connections) == 1
        assert feed.stats.restarts == 0 and sub.queue.empty()
        # each skipped frame is logged once, with an excerpt cut to about 200 characters
        skipped = [r.getMessage() for r in caplog.records if "skipping frame" in r.getMessage()]
        assert len(skipped) == len(malformed)
        assert "bad event time 'abc'" in skipped[0] and """'{"topic": "kline""" in skipped[0]
        assert "[[[[" in skipped[2] and "(200000 chars)" in skipped[2]
        assert all(len(m) < 600 for m in skipped)
        dropped = [r.getMessage() for r in caplog.records if "dropping invalid" in r.getMessage()]
        assert len(dropped) == len(invalid) and "off the 1m grid" in dropped[-1]
    finally:
        await feed.close()


async def test_bad_binance_event_time_and_prices_are_skipped(ex):
    series = ex.get("BTC/USDT", "1m")
    feed, sub = await open_feed(ex, "binance")
    try:
        nxt = series.cursor
        good = binance_message(series, nxt, state_of(series, nxt), True, 0, 1.0)
        bad_event = {**good, "E": "soon"}
        bad_flag = {**good, "k": {**good["k"], "x": "false"}}  # would read as closed
        zero_low = {**good, "k": {**good["k"], "l": "0"}}
        for msg in (bad_event, bad_flag, zero_low):
            await ex.send_raw(json.dumps(msg), venue="binance")
        await ex.emit_candle("BTC/USDT", "1m")
        await assert_next_is_candle(sub, series, nxt)
        assert (feed.stats.malformed, feed.stats.invalid) == (2, 1)
        assert feed.stats.connects == 1 and feed.connected
    finally:
        await feed.close()


async def test_any_exception_of_one_frame_skips_only_that_frame(ex, monkeypatch, caplog):
    series = ex.get("BTC/USDT", "1m")
    feed, sub = await open_feed(ex)
    errors = {"key": KeyError("k"), "type": TypeError("t"), "overflow": OverflowError("o"),
              "recursion": RecursionError("r"), "value": ValueError("v")}
    real_parse = feed.protocol.parse

    def parse(text):  # a parser bug on marked frames, whatever the exception type
        if text in errors:
            raise errors[text]
        return real_parse(text)

    monkeypatch.setattr(feed.protocol, "parse", parse)
    try:
        with caplog.at_level(logging.WARNING, logger="data.live.feed"):
            for marker in errors:
                await ex.send_raw(marker, venue="bybit")
            await ex.emit_candle("BTC/USDT", "1m")
            await assert_next_is_candle(sub, series, series.cursor - 1)
        assert feed.stats.malformed == len(errors)
        assert feed.connected and feed.stats.connects == 1 and feed.stats.restarts == 0
        logged = [r for r in caplog.records if "skipping frame" in r.getMessage()]
        assert [r.exc_info[0] for r in logged] == [type(e) for e in errors.values()]
    finally:
        await feed.close()


async def test_inconsistent_and_far_off_ticks_are_held_back(ex):
    series = ex.get("BTC/USDT", "1m")
    feed, sub = await open_feed(ex)
    try:
        first = await ex.emit_candle("BTC/USDT", "1m")  # the reference close
        await assert_next_is_candle(sub, series, series.cursor - 1)
        nxt = series.cursor
        c = series.candle(nxt)
        state = await ex.push_tick("BTC/USDT", "1m", c.open * 1.001)  # a real tick
        tick = await next_item(sub)
        assert isinstance(tick, KlineUpdate) and not tick.closed
        assert tick.candle.high == pytest.approx(state["high"])
        o = c.open

        def tick(open_: float, high: float, low: float, close: float) -> str:
            return bybit_frame(series, nxt, confirm=False, open=str(open_), high=str(high),
                               low=str(low), close=str(close))

        held = [  # each passes the basic candle checks
            tick(o * 1.0005, o * 1.002, o * 0.999, o * 1.001),  # the open moved
            tick(o, o, o, o),  # high below the earlier tick's high
            tick(o, o * 1.002, 1.0, 1.0),  # the low=1 wick
            tick(o, first.close * 1.3, o, o),  # 30 % above the last close
        ]
        for frame in held:
            await ex.send_raw(frame, venue="bybit")
        await ex.emit_candle("BTC/USDT", "1m")  # confirmed candles always get through
        await assert_next_is_candle(sub, series, nxt)
        assert feed.stats.held_ticks == len(held) and feed.stats.invalid == 0
        assert sub.queue.empty()
    finally:
        await feed.close()


# -- supervision -------------------------------------------------------------------------------

async def test_supervisor_restarts_a_loop_that_raised_and_delivery_resumes(ex, monkeypatch,
                                                                            caplog):
    series = ex.get("BTC/USDT", "1m")
    feed = LiveFeed(ex.ws_url("bybit"), BybitProtocol(), silence_timeout=5.0,
                    backoff_initial=0.05)
    real_read = feed._read
    calls = 0

    async def read_failing_once(ws):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        await real_read(ws)

    monkeypatch.setattr(feed, "_read", read_failing_once)
    with caplog.at_level(logging.ERROR, logger="data.live.feed"):
        sub = await feed.subscribe("BTC/USDT", "1m")
        try:
            statuses = [await next_item(sub) for _ in range(3)]
            assert [s.connected for s in statuses] == [True, False, True]
            assert "RuntimeError: boom" in statuses[1].detail
            assert feed.stats.restarts == 1 and feed.stats.connects == 2
            await ex.emit_candle("BTC/USDT", "1m")
            await assert_next_is_candle(sub, series, series.cursor - 1)
            assert any(r.exc_info and "restarting" in r.getMessage() for r in caplog.records)
        finally:
            started = time.monotonic()
            await feed.close()
            assert time.monotonic() - started < 3.0
    assert not feed.connected and feed._task is None


async def test_supervisor_restarts_a_loop_that_returned(ex, monkeypatch):
    feed = LiveFeed(ex.ws_url("bybit"), BybitProtocol(), backoff_initial=0.05)
    real_run = feed._run
    calls = 0

    async def run_returning_once():
        nonlocal calls
        calls += 1
        if calls > 1:
            await real_run()

    monkeypatch.setattr(feed, "_run", run_returning_once)
    sub = await feed.subscribe("BTC/USDT", "1m")
    try:
        status = await next_item(sub)
        assert isinstance(status, FeedStatus) and status.connected
        assert feed.stats.restarts == 1 and calls == 2
    finally:
        await feed.close()


async def test_close_is_prompt_while_the_supervisor_backs_off(ex, monkeypatch):
    feed = LiveFeed(ex.ws_url("bybit"), BybitProtocol(), backoff_initial=30.0,
                    backoff_max=30.0)

    async def run_failing():
        raise OSError("always down")

    monkeypatch.setattr(feed, "_run", run_failing)
    await feed.subscribe("BTC/USDT", "1m")
    await until(lambda: feed.stats.restarts == 1, WAIT, "a restart")
    started = time.monotonic()
    await feed.close()
    assert time.monotonic() - started < 1.0 and feed._task is None


# -- forward runs ------------------------------------------------------------------------------

async def start_always_long(env, stop_pct: str = "0.2", take_pct: str = "0.2"):
    record = await env.runtime.service.start_run(RunSpec(
        strategy="always_long", symbol="BTC/USDT", timeframe="1m",
        params={"stop_pct": stop_pct, "take_pct": take_pct}))
    await env.ex.wait_for_subscription("bybit", TOPIC)
    return record, env.runtime.engine.runs[record.id]


def expected_long_exit(series: CandleSeries, start: int, stop: float,
                       take: float) -> tuple[int, float, str]:
    """First candle from ``start`` touching a long's levels: (index, price, reason); both
    levels in one 1m candle resolve to the stop-loss, a gap through a level fills at the open."""
    for j in range(start, len(series)):
        c = series.candle(j)
        if c.open <= stop:
            return j, c.open, "stop_loss"
        if c.open >= take:
            return j, c.open, "take_profit"
        if c.low <= stop:
            return j, stop, "stop_loss"
        if c.high >= take:
            return j, take, "take_profit"
    raise AssertionError("no exit in the series")


async def test_a_fake_wick_tick_does_not_fill_the_stop_loss(tmp_path):
    async with forward_env(tmp_path) as env:
        run, live = await start_always_long(env)
        feed = env.runtime.engine.hub.feeds[0]
        await env.ex.emit_candle("BTC/USDT", "1m")
        await until(lambda: bool(live.portfolio.positions), what="position opened")
        position = live.portfolio.positions[0]
        drain(env.events)
        first = env.series.cursor
        await env.ex.push_tick("BTC/USDT", "1m", 1.0)  # low=1: a stop-loss that never happened
        await until(lambda: feed.stats.held_ticks == 1, what="tick held back")
        assert live.portfolio.positions == [position]
        j, price, reason = expected_long_exit(env.series, first, position.stop_loss,
                                              position.take_profit)
        assert j - first < 30  # the window chosen closes the trade soon (a real stop-loss)
        for i in range(first, j + 1):
            await env.ex.emit_candle("BTC/USDT", "1m")
            await until(lambda i=i: live.last_candle_ts == int(env.series.ts[i]),
                        what=f"candle {i} processed")
            if i < j:
                assert live.portfolio.positions[0].id == position.id
        closed = [e for e in drain(env.events) if isinstance(e, TradeClosed)]
        trades = await env.runtime.service.trades(run.id)
    assert len(closed) == 1 and [t.id for t in trades] == [closed[0].trade.id]
    trade = closed[0].trade
    assert trade.id == position.id and trade.exit_reason == reason
    assert trade.exit_price == pytest.approx(price)  # 0 bp slippage
    assert int(env.series.ts[j]) <= trade.exit_time <= int(env.series.ts[j]) + MIN
    assert trade.exit_price > position.stop_loss * 0.9  # nowhere near the fake low of 1


async def test_a_forward_run_survives_a_feed_loop_crash_and_backfills(tmp_path, monkeypatch):
    async with forward_env(tmp_path) as env:
        run, live = await start_always_long(env)
        feed = env.runtime.engine.hub.feeds[0]
        await env.ex.replay("BTC/USDT", "1m", 5)
        await until(lambda: live.last_candle_ts == int(env.series.ts[204]))
        real_on_frame = feed._on_frame

        def on_frame_failing_once(frame):
            monkeypatch.setattr(feed, "_on_frame", real_on_frame)
            raise RuntimeError("injected")

        monkeypatch.setattr(feed, "_on_frame", on_frame_failing_once)
        await env.ex.replay("BTC/USDT", "1m", 5)  # the first frame kills the loop
        await until(lambda: feed.stats.restarts == 1 and feed.connected, what="restart")
        await env.ex.wait_for_subscription("bybit", TOPIC)
        await env.ex.replay("BTC/USDT", "1m", 5)
        await until(lambda: live.last_candle_ts == int(env.series.ts[214]),
                    what="every candle processed")
        async with env.runtime.store.db.execute(
                "SELECT ts FROM equity WHERE run_id=? AND kind='candle' ORDER BY rowid",
                (run.id,)) as cur:
            closes = [row[0] for row in await cur.fetchall()]
        events = drain(env.events)
    assert closes == [int(t) + MIN for t in env.series.ts[200:215]]  # each candle once
    lost = [e for e in events if isinstance(e, FeedLost)]
    restored = [e for e in events if isinstance(e, FeedRestored)]
    assert len(lost) == 1 and "RuntimeError: injected" in lost[0].detail
    assert len(restored) == 1 and restored[0].backfilled >= 1


# -- REST rows ---------------------------------------------------------------------------------

class RowsExchange:
    """A ccxt-like exchange serving fixed rows (some of them bad)."""

    id = "rows"

    def __init__(self, rows: list[list[float]]) -> None:
        self.rows = rows

    async def fetch_ohlcv(self, symbol, timeframe, since=None, limit=None, params=None):
        until = (params or {}).get("until", math.inf)
        return [r for r in self.rows if since <= r[0] <= until]


async def test_rest_rows_with_bad_values_are_dropped(caplog):
    good = [[T0 + i * MIN, 100.0, 101.0, 99.0, 100.5, 3.0] for i in range(10)]
    rows = [list(r) for r in good]
    rows[1][1] = math.nan  # open
    rows[2][3] = -1.0  # low
    rows[3][2] = 98.0  # high below low
    rows[4][4] = 0.0  # close
    rows[5][5] = math.inf  # volume
    rows[6][5] = -2.0  # volume
    rows.insert(8, [T0 + 7 * MIN + 30_000, 100.0, 101.0, 99.0, 100.5, 1.0])  # off the grid
    with caplog.at_level(logging.WARNING, logger="data.history"):
        candles = await fetch_ohlcv_range(RowsExchange(rows), "BTC/USDT", "1m", T0,
                                          T0 + 10 * MIN, now_ms=T0 + 100 * MIN)
    kept = [0, 7, 8, 9]
    assert candles.timestamp.tolist() == [T0 + i * MIN for i in kept]
    assert candles.low.tolist() == [99.0] * 4 and candles.volume.tolist() == [3.0] * 4
    assert any("dropping 7 implausible" in r.getMessage() for r in caplog.records)


# -- sanity.py ---------------------------------------------------------------------------------

GOOD = Candle(T0, 100.0, 101.0, 99.0, 100.5, 2.0)


@pytest.mark.parametrize(("change", "words"), [
    ({"open": math.nan}, "finite and > 0"),
    ({"high": math.inf}, "finite and > 0"),
    ({"low": 0.0}, "finite and > 0"),
    ({"close": -100.5}, "finite and > 0"),
    ({"volume": -1.0}, "volume"),
    ({"volume": math.nan}, "volume"),
    ({"low": 100.2}, "inconsistent"),  # low above the open
    ({"high": 100.4}, "inconsistent"),  # high below the close
    ({"timestamp": T0 + 1}, "off the 1m grid"),
    ({"timestamp": -MIN}, "out of range"),
    ({"timestamp": 2**63}, "out of range"),
])
def test_candle_problem_names_what_is_wrong(change, words):
    problem = candle_problem(replace(GOOD, **change), "1m")
    assert problem is not None and words in problem


def test_candle_problem_accepts_plausible_candles_and_weekly_grid():
    assert candle_problem(GOOD, "1m") is None
    assert candle_problem(replace(GOOD, volume=0.0), "1h") is None
    flat = Candle(T0, 5.0, 5.0, 5.0, 5.0, 0.0)
    assert candle_problem(flat, "1d") is None
    assert candle_problem(GOOD, "1w") is None  # 2024-01-01 was a Monday
    assert "off the 1w grid" in candle_problem(replace(GOOD, timestamp=T0 + 86_400_000), "1w")
    assert "off the 1h grid" in candle_problem(replace(GOOD, timestamp=T0 + MIN), "1h")


def test_valid_rows_agrees_with_candle_problem():
    rng = np.random.default_rng(7)
    n = 2000
    base = rng.uniform(1, 1000, n)
    table = np.column_stack([
        T0 + MIN * rng.integers(0, 100, n) + rng.choice([0, 0, 0, 1], n),
        base * rng.uniform(0.95, 1.05, n), base * rng.uniform(0.97, 1.1, n),
        base * rng.uniform(0.9, 1.03, n), base * rng.uniform(0.95, 1.05, n),
        rng.uniform(-1, 10, n),
    ]).astype(np.float64)
    table[rng.integers(0, n, 50), rng.integers(1, 6, 50)] = np.nan
    table[rng.integers(0, n, 50), rng.integers(1, 6, 50)] = np.inf
    mask = valid_rows(table, "1m")
    expected = [candle_problem(Candle(int(r[0]), *map(float, r[1:])), "1m") is None
                if np.isfinite(r[0]) else False for r in table]
    assert mask.tolist() == expected
    assert 0 < mask.sum() < n  # both kinds present


def test_tick_problem_holds_ticks_that_do_not_fit():
    tick = Candle(T0, 100.0, 101.0, 99.5, 100.5, 1.0)
    seen = TickRange(T0, 100.0, 100.8, 99.6)
    assert tick_problem(tick, None, None) is None
    assert tick_problem(tick, seen, 100.0) is None
    assert seen_after(tick) == TickRange(T0, 100.0, 101.0, 99.5)
    # a new candle starts afresh; an older candle's tick is stale
    assert tick_problem(replace(tick, timestamp=T0 + MIN, open=90.0), seen, 100.0) is None
    assert "after ticks of" in tick_problem(replace(tick, timestamp=T0 - MIN), seen, 100.0)
    assert "open" in tick_problem(replace(tick, open=100.1), seen, 100.0)
    assert "narrower" in tick_problem(replace(tick, high=100.7), seen, 100.0)
    assert "narrower" in tick_problem(replace(tick, low=99.7), seen, 100.0)
    # the bound: 25 % from the previous close, or from the open before any close
    low_edge = 100.0 * (1 - MAX_TICK_MOVE)
    assert tick_problem(replace(tick, low=low_edge, close=low_edge), None, 100.0) is None
    wick = replace(tick, low=1.0, close=1.0)
    assert "more than 25%" in tick_problem(wick, seen, 100.0)
    assert "more than 25%" in tick_problem(wick, None, None)
    assert "more than 25%" in tick_problem(replace(tick, high=126.0), None, 100.0)
    assert tick_problem(replace(tick, high=126.0), None, 110.0) is None


def test_parsers_turn_bad_field_types_into_malformed_messages():
    bybit = BybitProtocol()
    item = {"start": T0, "open": "1", "high": "2", "low": "0.5", "close": "1.5",
            "volume": "3", "confirm": True, "timestamp": T0 + 5}
    frame = {"topic": TOPIC, "data": [item], "ts": T0 + 5}
    assert bybit.parse(json.dumps(frame))[0].event_ts == T0 + 5
    for bad in ({"timestamp": "abc"}, {"start": "x"}, {"start": 1.5}, {"start": True},
                {"open": [1]}, {"open": True}, {"high": 10**400}, {"confirm": "false"}):
        with pytest.raises(MalformedMessage):
            bybit.parse(json.dumps({**frame, "data": [{**item, **bad}]}))
    with pytest.raises(MalformedMessage, match="RecursionError"):
        bybit.parse("[" * 100_000 + "]" * 100_000)
    # values of the right type pass the parser: sanity.py judges them
    update = bybit.parse(json.dumps({**frame, "data": [{**item, "low": "-1"}]}))[0]
    assert update.candle.low == -1.0
