"""Protocol tests of the exchange stand-in (tests/standins/exchange.py) and data/exchanges.py.

Raw websockets clients check the Bybit v5 / Binance message formats; ccxt clients built by
make_exchange(..., rest_url=...) check the REST side against the real candles in shared/data.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import ccxt
import pandas as pd
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from data.exchanges import make_exchange, rewrite_api_urls, symbol_to_exchange_id
from tests.helpers import SAMPLE_DATA
from tests.standins.exchange import CandleSeries, ExchangeStandin

DATA = SAMPLE_DATA
ROWS, CURSOR = 2000, 1500  # candles loaded / initially closed
MINUTE = 60_000
TIMEOUT = 3.0


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """First ROWS real 1m BTC/USDT candles."""
    return pd.read_parquet(DATA / "binance_BTC-USDT_1m.parquet").iloc[:ROWS].reset_index(drop=True)


@pytest.fixture
async def ex(frame: pd.DataFrame) -> AsyncIterator[ExchangeStandin]:
    series = CandleSeries.from_columns("BTC/USDT", "1m", frame, cursor=CURSOR)
    async with ExchangeStandin([series], binance_ping_interval=0.1,
                               binance_pong_timeout=0.3) as standin:
        yield standin


def row(frame: pd.DataFrame, i: int) -> dict[str, Any]:
    r = frame.iloc[i]
    return {"ts": int(r.timestamp), "open": float(r.open), "high": float(r.high),
            "low": float(r.low), "close": float(r.close), "volume": float(r.volume)}


async def recv_json(ws: ClientConnection, timeout: float = TIMEOUT) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def assert_silent(ws: ClientConnection, seconds: float = 0.15) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), seconds)


async def bybit_subscribe(ws: ClientConnection, topic: str, req_id: str = "s1") -> Any:
    await ws.send(json.dumps({"op": "subscribe", "args": [topic], "req_id": req_id}))
    return await recv_json(ws)


# -- Bybit websocket ---------------------------------------------------------------------------


async def test_bybit_spot_subscribe_ping_and_kline_updates(
        ex: ExchangeStandin, frame: pd.DataFrame) -> None:
    async with connect(ex.ws_url("bybit", "spot")) as ws:
        ack = await bybit_subscribe(ws, "kline.1.BTCUSDT", "abc")
        conn_id = ack.pop("conn_id")
        assert ack == {"success": True, "ret_msg": "subscribe", "req_id": "abc", "op": "subscribe"}
        await ws.send(json.dumps({"op": "ping", "req_id": "p1"}))
        assert await recv_json(ws) == {"success": True, "ret_msg": "pong", "conn_id": conn_id,
                                       "req_id": "p1", "op": "ping"}

        expected = row(frame, CURSOR)
        await ex.emit_candle("BTC/USDT", "1m", ticks=3)
        msgs = [await recv_json(ws) for _ in range(4)]
        for m in msgs:
            assert m["topic"] == "kline.1.BTCUSDT" and m["type"] == "snapshot"
            (k,) = m["data"]
            assert (k["start"], k["end"], k["interval"]) == (
                expected["ts"], expected["ts"] + MINUTE - 1, "1")
            assert float(k["open"]) == expected["open"]
            assert expected["low"] <= float(k["low"]) <= float(k["high"]) <= expected["high"]
            assert m["ts"] == k["timestamp"]
        assert [m["data"][0]["confirm"] for m in msgs] == [False, False, False, True]
        ts_seq = [m["ts"] for m in msgs]
        assert ts_seq == sorted(ts_seq) and ts_seq[-1] == expected["ts"] + MINUTE
        final = msgs[-1]["data"][0]
        assert {f: float(final[f]) for f in ("open", "high", "low", "close", "volume")} == {
            f: expected[f] for f in ("open", "high", "low", "close", "volume")}
        assert float(msgs[2]["data"][0]["close"]) == expected["close"]  # path ends at close
        assert ex.cursor("BTC/USDT", "1m") == CURSOR + 1

        await ws.send(json.dumps({"op": "unsubscribe", "args": ["kline.1.BTCUSDT"],
                                  "req_id": "u1"}))
        assert await recv_json(ws) == {"success": True, "ret_msg": "", "conn_id": conn_id,
                                       "req_id": "u1", "op": "unsubscribe"}
        await ex.emit_candle("BTC/USDT", "1m", ticks=1)
        await assert_silent(ws)
    (record,) = ex.connections
    assert record.history == [("subscribe", ("kline.1.BTCUSDT",)),
                              ("unsubscribe", ("kline.1.BTCUSDT",))]
    assert record.app_pings == 1


async def test_bybit_linear_pong_shape_and_subscribe_errors(ex: ExchangeStandin) -> None:
    async with connect(ex.ws_url("bybit", "linear")) as ws:
        ack = await bybit_subscribe(ws, "kline.1.BTCUSDT")
        assert ack["success"] is True and ack["ret_msg"] == "" and ack["op"] == "subscribe"
        await ws.send(json.dumps({"op": "ping", "req_id": "p9"}))
        pong = await recv_json(ws)
        assert pong["op"] == "pong" and pong["req_id"] == "p9"
        assert pong["conn_id"] == ack["conn_id"] and int(pong["args"][0]) > 0
        bad = await bybit_subscribe(ws, "kline.1.DOGEUSDT", "s2")
        assert bad["success"] is False and "kline.1.DOGEUSDT" in bad["ret_msg"]
        dup = await bybit_subscribe(ws, "kline.1.BTCUSDT", "s3")
        assert dup["success"] is False and "already subscribed" in dup["ret_msg"]


async def test_push_tick_reaches_a_price_outside_the_stored_range(
        ex: ExchangeStandin, frame: pd.DataFrame) -> None:
    expected = row(frame, CURSOR)
    wick = expected["low"] - 500.0
    async with connect(ex.ws_url("bybit", "spot")) as ws:
        await bybit_subscribe(ws, "kline.1.BTCUSDT")
        await ex.push_tick("BTC/USDT", "1m", wick)
        k = (await recv_json(ws))["data"][0]
        assert (float(k["close"]), float(k["low"]), k["confirm"]) == (wick, wick, False)
        await ex.emit_candle("BTC/USDT", "1m", ticks=1)
        tick, final = (await recv_json(ws))["data"][0], (await recv_json(ws))["data"][0]
        assert float(tick["low"]) == wick  # partial state keeps the wick
        assert (float(final["low"]), final["confirm"]) == (expected["low"], True)


# -- Binance websocket -------------------------------------------------------------------------


async def test_binance_subscribe_kline_events_and_server_pings(
        ex: ExchangeStandin, frame: pd.DataFrame) -> None:
    async with connect(ex.ws_url("binance")) as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"],
                                  "id": 1}))
        assert await recv_json(ws) == {"result": None, "id": 1}
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        assert await recv_json(ws) == {"result": ["btcusdt@kline_1m"], "id": 2}

        expected = row(frame, CURSOR)
        await ex.emit_candle("BTC/USDT", "1m", ticks=2)
        events = [await recv_json(ws) for _ in range(3)]
        assert [e["k"]["x"] for e in events] == [False, False, True]
        for e in events:
            assert (e["e"], e["s"], e["k"]["s"], e["k"]["i"]) == ("kline", "BTCUSDT",
                                                                  "BTCUSDT", "1m")
            assert (e["k"]["t"], e["k"]["T"]) == (expected["ts"], expected["ts"] + MINUTE - 1)
        k = events[-1]["k"]
        assert (float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"]), float(k["v"])) == (
            expected["open"], expected["high"], expected["low"], expected["close"],
            expected["volume"])
        assert events[-1]["E"] == expected["ts"] + MINUTE

        (record,) = await ex.wait_for_connections(1, venue="binance")
        for _ in range(50):  # the client library answers the 0.1 s ping frames by itself
            if record.pongs >= 2:
                break
            await asyncio.sleep(0.05)
        assert record.pongs >= 2
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@kline_1m"],
                                  "id": 3}))
        assert await recv_json(ws) == {"result": None, "id": 3}


async def test_binance_closes_a_client_that_does_not_pong(ex: ExchangeStandin) -> None:
    async with connect(ex.ws_url("binance")) as ws:
        ws.transport.pause_reading()  # the client stops reading, so it never answers pings
        await asyncio.sleep(0.6)  # > ping interval + pong timeout
        ws.transport.resume_reading()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 1008


async def test_binance_raw_and_combined_stream_urls(ex: ExchangeStandin) -> None:
    base = ex.ws_url("binance")
    async with connect(f"{base}/btcusdt@kline_1m") as raw, \
            connect(base.replace("/ws", "/stream?streams=btcusdt@kline_1m")) as combined:
        await ex.wait_for_subscription("binance", "btcusdt@kline_1m", count=2)
        await ex.emit_candle("BTC/USDT", "1m")
        event = await recv_json(raw)
        wrapped = await recv_json(combined)
        assert wrapped == {"stream": "btcusdt@kline_1m", "data": event}


# -- faults and records ------------------------------------------------------------------------


async def test_duplicate_and_out_of_order_confirmed_candles(
        ex: ExchangeStandin, frame: pd.DataFrame) -> None:
    async with connect(ex.ws_url("bybit", "spot")) as ws:
        await bybit_subscribe(ws, "kline.1.BTCUSDT")
        await ex.emit_candle("BTC/USDT", "1m")
        first = await asyncio.wait_for(ws.recv(), TIMEOUT)
        await ex.resend_last_confirmed("BTC/USDT", "1m")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == first
        await ex.send_confirmed("BTC/USDT", "1m", CURSOR - 10)
        old = (await recv_json(ws))["data"][0]
        assert old["start"] == row(frame, CURSOR - 10)["ts"] and old["confirm"] is True
        assert ex.cursor("BTC/USDT", "1m") == CURSOR + 1


async def test_drop_connections_is_abrupt_and_reconnect_works(ex: ExchangeStandin) -> None:
    async with connect(ex.ws_url("bybit", "spot")) as ws:
        await bybit_subscribe(ws, "kline.1.BTCUSDT")
        assert await ex.drop_connections() == 1
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 1006  # no close frame
    assert not ex.connections[0].open
    async with connect(ex.ws_url("bybit", "spot")) as ws2:
        await bybit_subscribe(ws2, "kline.1.BTCUSDT")
        await ex.emit_candle("BTC/USDT", "1m")
        assert (await recv_json(ws2))["data"][0]["confirm"] is True


async def test_stall_silences_pushes_and_pings_then_recovers(ex: ExchangeStandin) -> None:
    async with connect(ex.ws_url("bybit", "spot")) as ws:
        await bybit_subscribe(ws, "kline.1.BTCUSDT")
        ex.stall(1.0)
        await ex.emit_candle("BTC/USDT", "1m", ticks=2)
        await ws.send(json.dumps({"op": "ping"}))
        protocol_pong = await ws.ping()
        await assert_silent(ws, 0.25)
        assert not protocol_pong.done()
        assert ex.ws.dropped_while_stalled == 3
        await asyncio.wait_for(protocol_pong, TIMEOUT)  # answered once the stall ends
        assert (await recv_json(ws))["ret_msg"] == "pong"  # the queued app ping too
        await ex.emit_candle("BTC/USDT", "1m")
        assert (await recv_json(ws))["data"][0]["confirm"] is True


async def test_send_raw_and_latency_records(ex: ExchangeStandin) -> None:
    async with connect(ex.ws_url("bybit", "spot")) as bybit, \
            connect(ex.ws_url("binance")) as binance:
        await bybit_subscribe(bybit, "kline.1.BTCUSDT")
        await binance.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"],
                                       "id": 7}))
        await recv_json(binance)
        garbage = '{"topic": "kline.1.BTCUSDT", "data": ['
        assert await ex.send_raw(garbage) == 2
        assert await asyncio.wait_for(bybit.recv(), TIMEOUT) == garbage
        await asyncio.wait_for(binance.recv(), TIMEOUT)
        candles = await ex.replay("BTC/USDT", "1m", 5)
        for ws in (bybit, binance):
            for _ in candles:
                await recv_json(ws)
    sent = ex.sent_confirmed
    assert len(sent) == 10 and {s.venue for s in sent} == {"bybit", "binance"}
    assert [s.open_ms for s in sent if s.venue == "bybit"] == [c.ts for c in candles]
    perf = [s.perf for s in sent]
    assert perf == sorted(perf)


# -- REST through ccxt -------------------------------------------------------------------------

REST_CASES = [
    ("binance", "spot", "BTC/USDT", ["/api/v3/exchangeInfo"]),
    ("bybit", "spot", "BTC/USDT", ["/v5/market/instruments-info"]),
    ("bybit", "linear", "BTC/USDT:USDT", ["/v5/market/instruments-info"] * 2),
]


@pytest.mark.parametrize(("exchange_id", "market_type", "symbol", "load_paths"), REST_CASES)
async def test_ccxt_loads_markets_and_pages_through_exact_candles(
        ex: ExchangeStandin, frame: pd.DataFrame, exchange_id: str, market_type: str,
        symbol: str, load_paths: list[str]) -> None:
    exchange = make_exchange(exchange_id, rest_url=ex.rest_url, market_type=market_type)
    try:
        markets = await exchange.load_markets()
        assert list(markets) == [symbol]
        assert [r.path for r in ex.rest_requests] == load_paths  # minimal public endpoints
        got: list[list[float]] = []
        since = int(frame.timestamp[0])
        for _ in range(10):  # 1500 closed candles: 2 pages of <= 1000
            page = await exchange.fetch_ohlcv(symbol, "1m", since=since, limit=1000)
            if not page:
                break
            got.extend(page)
            since = page[-1][0] + MINUTE
        expected = frame.iloc[:CURSOR][["timestamp", "open", "high", "low", "close", "volume"]]
        assert got == [[int(r[0]), *map(float, r[1:])] for r in expected.itertuples(index=False)]
        assert len(ex.rest_requests) == len(load_paths) + 3  # 2 pages + 1 empty

        latest = await exchange.fetch_ohlcv(symbol, "1m", limit=3)
        assert [c[0] for c in latest] == frame.timestamp[CURSOR - 3:CURSOR].tolist()
        await ex.emit_candle("BTC/USDT", "1m")
        latest = await exchange.fetch_ohlcv(symbol, "1m", limit=1)
        assert latest[0][0] == frame.timestamp[CURSOR]  # closed now, served
        assert ex.unknown_routes == []
    finally:
        await exchange.close()


async def test_ccxt_builtin_pagination_with_until(ex: ExchangeStandin, frame: pd.DataFrame) -> None:
    exchange = make_exchange("bybit", rest_url=ex.rest_url)
    try:
        since, until = int(frame.timestamp[10]), int(frame.timestamp[1409])
        got = await exchange.fetch_ohlcv("BTC/USDT", "1m", since=since,
                                         params={"paginate": True, "until": until})
        assert [c[0] for c in got] == frame.timestamp[10:1410].tolist()
    finally:
        await exchange.close()


@pytest.mark.parametrize(("exchange_id", "symbol"), [("binance", "BTC/USDT"),
                                                     ("bybit", "BTC/USDT")])
async def test_rest_fault_injection_maps_to_ccxt_errors(
        ex: ExchangeStandin, exchange_id: str, symbol: str) -> None:
    exchange = make_exchange(exchange_id, rest_url=ex.rest_url)
    try:
        await exchange.load_markets()
        ex.fail_next_rest(1, 429)
        with pytest.raises((ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
            await exchange.fetch_ohlcv(symbol, "1m", limit=2)
        ex.fail_next_rest(1, 503)
        with pytest.raises(ccxt.NetworkError):
            await exchange.fetch_ohlcv(symbol, "1m", limit=2)
        assert len(await exchange.fetch_ohlcv(symbol, "1m", limit=2)) == 2
        assert [r.status for r in ex.rest_requests[-3:]] == [
            429 if exchange_id == "binance" else 200, 503, 200]
    finally:
        await exchange.close()


# -- data/exchanges.py -------------------------------------------------------------------------


def test_make_exchange_rewrites_urls_and_limits_market_types() -> None:
    bybit = make_exchange("bybit", rest_url="http://127.0.0.1:8123", market_type="linear",
                          async_=False)
    assert set(bybit.urls["api"].values()) == {"http://127.0.0.1:8123"}
    assert bybit.options["fetchMarkets"]["types"] == ["linear"]
    assert bybit.enableRateLimit and bybit.timeout == 10_000
    binance = make_exchange("binance", rest_url="https://mirror.example/prefix", async_=False)
    assert binance.urls["api"]["public"] == "https://mirror.example/prefix/api/v3"
    assert binance.urls["api"]["fapiPublic"] == "https://mirror.example/prefix/fapi/v1"
    assert binance.options["fetchMarkets"]["types"] == ["spot"]
    usdm = make_exchange("binanceusdm", async_=False)
    assert usdm.options["fetchMarkets"]["types"] == ["linear"]
    assert usdm.urls["api"]["fapiPublic"] == "https://fapi.binance.com/fapi/v1"
    assert make_exchange("kraken", async_=False).id == "kraken"
    assert rewrite_api_urls({"ws": "wss://x/ws", "a": ["https://h/p?q=1"]}, "http://l:1") == {
        "ws": "wss://x/ws", "a": ["http://l:1/p?q=1"]}
    for bad in ({"exchange_id": "nope"}, {"exchange_id": "bybit", "market_type": "option"},
                {"exchange_id": "binanceusdm", "market_type": "spot"},
                {"exchange_id": "bybit", "rest_url": "127.0.0.1:80"}):
        with pytest.raises(ValueError):
            make_exchange(async_=False, **bad)


def test_symbol_to_exchange_id() -> None:
    assert symbol_to_exchange_id("BTC/USDT", "binance") == "BTCUSDT"
    assert symbol_to_exchange_id("eth/usdt:USDT", "bybit", "linear") == "ETHUSDT"
    for args in (("BTCUSDT", "binance"), ("BTC/USDT", "kraken"), ("BTC/USDT:BTC", "bybit")):
        with pytest.raises(ValueError):
            symbol_to_exchange_id(*args)
