"""Candle model and the websocket half of the exchange stand-in (Bybit v5 public, Binance spot).

Used through :class:`tests.standins.exchange.ExchangeStandin`; see that module for the protocol
summary. Message shapes follow the public docs:

* Bybit v5 connect/heartbeat/subscribe: https://bybit-exchange.github.io/docs/v5/ws/connect
* Bybit v5 kline push: https://bybit-exchange.github.io/docs/v5/websocket/public/kline
* Binance spot streams: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

# ccxt timeframe -> (duration ms, Bybit interval, Binance interval)
TIMEFRAMES: dict[str, tuple[int, str, str]] = {
    "1m": (60_000, "1", "1m"),
    "3m": (180_000, "3", "3m"),
    "5m": (300_000, "5", "5m"),
    "15m": (900_000, "15", "15m"),
    "30m": (1_800_000, "30", "30m"),
    "1h": (3_600_000, "60", "1h"),
    "2h": (7_200_000, "120", "2h"),
    "4h": (14_400_000, "240", "4h"),
    "6h": (21_600_000, "360", "6h"),
    "12h": (43_200_000, "720", "12h"),
    "1d": (86_400_000, "D", "1d"),
    "1w": (604_800_000, "W", "1w"),
}
VENUES = ("bybit", "binance")


def fmt(value: float) -> str:
    """Shortest positional decimal string that parses back to exactly ``value``."""
    return np.format_float_positional(float(value), trim="-")


def market_id(symbol: str) -> str:
    """Unified ``BTC/USDT`` (or ``BTC/USDT:USDT``) -> exchange id ``BTCUSDT``."""
    return symbol.split(":")[0].replace("/", "").upper()


class Candle(NamedTuple):
    """One OHLCV candle; ``ts`` is the open time in ms UTC, prices in quote currency."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass
class CandleSeries:
    """Candles of one (unified symbol, ccxt timeframe) plus the replay cursor.

    ``cursor`` is the index of the first candle that is not closed yet: REST serves
    ``[0, cursor)`` and the websocket's next emitted candle is ``cursor``. ``live`` holds the
    partial state of candle ``cursor`` while ticks for it are being pushed.
    """

    symbol: str
    timeframe: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    cursor: int = 0
    live: dict[str, float] | None = None
    last_confirmed: dict[str, str] = field(default_factory=dict)  # venue -> last payload text

    @classmethod
    def from_columns(
        cls, symbol: str, timeframe: str, data: Any, cursor: int | None = None
    ) -> CandleSeries:
        """Build from a DataFrame/mapping with timestamp/open/high/low/close/volume columns.

        ``cursor`` defaults to half the length. Raises ValueError for an unknown timeframe,
        unsorted/misaligned timestamps or a cursor outside ``[0, len]``.
        """
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"unsupported timeframe {timeframe!r}")
        ts = np.asarray(data["timestamp"], dtype=np.int64)
        cols = {k: np.asarray(data[k], dtype=np.float64) for k in ("open", "high", "low", "close")}
        volume = np.asarray(data["volume"], dtype=np.float64)
        dur = TIMEFRAMES[timeframe][0]
        if len(ts) and (np.any(np.diff(ts) <= 0) or np.any(ts % dur)):
            raise ValueError("timestamps must be strictly increasing and aligned to the timeframe")
        cursor = len(ts) // 2 if cursor is None else cursor
        if not 0 <= cursor <= len(ts):
            raise ValueError(f"cursor {cursor} outside [0, {len(ts)}]")
        return cls(symbol, timeframe, ts, volume=volume, cursor=cursor, **cols)

    @classmethod
    def from_parquet(
        cls, path: str | Path, symbol: str, timeframe: str, *, start: int = 0,
        count: int | None = None, cursor: int | None = None,
    ) -> CandleSeries:
        """Load rows ``[start, start+count)`` of a Parquet candle file (see shared/data)."""
        import pandas as pd

        frame = pd.read_parquet(path)
        frame = frame.iloc[start : None if count is None else start + count]
        return cls.from_columns(symbol, timeframe, frame, cursor)

    @property
    def duration_ms(self) -> int:
        """Candle duration in milliseconds."""
        return TIMEFRAMES[self.timeframe][0]

    def __len__(self) -> int:
        return len(self.ts)

    def candle(self, index: int) -> Candle:
        """The stored candle at ``index``."""
        return Candle(int(self.ts[index]), float(self.open[index]), float(self.high[index]),
                      float(self.low[index]), float(self.close[index]), float(self.volume[index]))

    def closed_slice(self, start: int | None, end: int | None, limit: int,
                     *, containing_start: bool = False) -> tuple[int, int]:
        """Index range of closed candles selected by open-time bounds (ms, inclusive).

        With ``start`` the earliest ``limit`` candles from ``start`` are chosen, otherwise the
        latest ``limit`` candles up to ``end`` (or up to the cursor). ``containing_start`` also
        includes the candle whose span contains ``start`` (Bybit semantics).
        """
        hi = self.cursor
        if end is not None:
            hi = min(hi, int(np.searchsorted(self.ts, end, "right")))
        if start is not None:
            lo_key = start - self.duration_ms + 1 if containing_start else start
            lo = int(np.searchsorted(self.ts, lo_key, "left"))
            return lo, max(lo, min(hi, lo + limit))
        return max(0, hi - limit), hi


def tick_path(c: Candle, fraction: float) -> tuple[float, float, float]:
    """(high, low, close) after ``fraction`` (0..1] of the path open->low->high->close.

    Bearish candles (close < open) take open->high->low->close. At fraction 1 the result is
    exactly the stored (high, low, close).
    """
    first, second = (c.low, c.high) if c.close >= c.open else (c.high, c.low)
    points = [c.open, first, second, c.close]
    legs = [abs(b - a) for a, b in itertools.pairwise(points)]
    total = sum(legs)
    if fraction >= 1.0 or total == 0.0:
        return (c.high, c.low, c.close) if fraction >= 1.0 else (c.open, c.open, c.open)
    distance, hi, lo, price = fraction * total, c.open, c.open, c.open
    for (a, b), leg in zip(itertools.pairwise(points), legs, strict=True):
        if distance >= leg:
            price, distance = b, distance - leg
        else:
            price = a + (b - a) * (distance / leg if leg else 0.0)
            distance = -1.0
        hi, lo = max(hi, price), min(lo, price)
        if distance < 0:
            break
    return hi, lo, price


def bybit_message(series: CandleSeries, index: int, state: Mapping[str, float],
                  confirm: bool, event_ms: int) -> dict[str, Any]:
    """Bybit v5 ``kline.{interval}.{symbol}`` push for candle ``index`` in ``state``."""
    dur, interval, _ = TIMEFRAMES[series.timeframe]
    start = int(series.ts[index])
    price = (state["open"] + state["high"] + state["low"] + state["close"]) / 4
    data = {
        "start": start, "end": start + dur - 1, "interval": interval,
        "open": fmt(state["open"]), "close": fmt(state["close"]), "high": fmt(state["high"]),
        "low": fmt(state["low"]), "volume": fmt(state["volume"]),
        "turnover": fmt(state["volume"] * price), "confirm": confirm, "timestamp": event_ms,
    }
    topic = f"kline.{interval}.{market_id(series.symbol)}"
    return {"topic": topic, "data": [data], "ts": event_ms, "type": "snapshot"}


def binance_message(series: CandleSeries, index: int, state: Mapping[str, float],
                    closed: bool, event_ms: int, fraction: float) -> dict[str, Any]:
    """Binance ``<symbol>@kline_<interval>`` event; trade ids/counts and quote volumes are
    synthesized (the source data has only OHLCV)."""
    dur, _, interval = TIMEFRAMES[series.timeframe]
    start, sym = int(series.ts[index]), market_id(series.symbol)
    trades = max(1, round(100 * fraction))
    price = (state["open"] + state["high"] + state["low"] + state["close"]) / 4
    return {"e": "kline", "E": event_ms, "s": sym, "k": {
        "t": start, "T": start + dur - 1, "s": sym, "i": interval,
        "f": index * 100, "L": index * 100 + trades - 1,
        "o": fmt(state["open"]), "c": fmt(state["close"]), "h": fmt(state["high"]),
        "l": fmt(state["low"]), "v": fmt(state["volume"]), "n": trades, "x": closed,
        "q": fmt(state["volume"] * price), "V": fmt(state["volume"] / 2),
        "Q": fmt(state["volume"] * price / 2), "B": "0"}}


@dataclass
class WsClient:
    """Record of one websocket connection (kept after it closes)."""

    conn_id: str
    venue: str  # "bybit" | "binance"
    category: str  # bybit: "spot" | "linear"; binance: "spot"
    path: str
    combined: bool = False  # binance /stream?streams=... wraps events as {"stream","data"}
    topics: set[str] = field(default_factory=set)
    history: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    app_pings: int = 0  # bybit {"op":"ping"} received
    pongs: int = 0  # binance: pong frames answering the server's pings
    received: list[str] = field(default_factory=list)
    open: bool = True
    ws: ServerConnection | None = field(default=None, repr=False)


@dataclass
class SentConfirmed:
    """A confirmed (closed) kline message handed to a connection; ``perf`` = perf_counter()."""

    venue: str
    conn_id: str
    topic: str
    open_ms: int
    perf: float


class WsHub:
    """Websocket server on 127.0.0.1 serving Bybit v5 public and Binance spot kline streams."""

    def __init__(self, series: Mapping[tuple[str, str], CandleSeries], *,
                 binance_ping_interval: float, binance_pong_timeout: float,
                 bybit_pong_style: Mapping[str, str]) -> None:
        self.series = series
        self.bybit_topics = {f"kline.{TIMEFRAMES[tf][1]}.{market_id(sym)}": s
                             for (sym, tf), s in series.items()}
        self.binance_ping_interval = binance_ping_interval
        self.binance_pong_timeout = binance_pong_timeout
        self.bybit_pong_style = dict(bybit_pong_style)
        self.clients: list[WsClient] = []
        self.tickers: Any = None  # exchange_tickers.TickerStream (linear ticker topics)
        self.sent_confirmed: list[SentConfirmed] = []
        self.dropped_while_stalled = 0
        self.stalled_until = 0.0
        self.stall_started = 0.0
        self.changed = asyncio.Condition()
        self.port = 0
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1 (protocol-level keepalive off: we do our own)."""
        self._server = await serve(self._handle, "127.0.0.1", 0, ping_interval=None,
                                   max_size=2**20)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection and the listening socket."""
        self.resume()  # paused readers could not complete the closing handshake
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    @property
    def stalled(self) -> bool:
        """True while a :meth:`stall` is in force."""
        return time.monotonic() < self.stalled_until

    def stall(self, seconds: float) -> None:
        """Stop reading from (so stop answering pings of) and writing to every connection."""
        self.stall_started = time.monotonic()
        self.stalled_until = self.stall_started + seconds
        for c in self.open_clients():
            self._pause(c)
        asyncio.get_running_loop().call_later(seconds, self._maybe_resume)

    def resume(self) -> None:
        """End a stall now."""
        self.stalled_until = 0.0
        self._maybe_resume()

    def _maybe_resume(self) -> None:
        if not self.stalled:
            for c in self.open_clients():
                if c.ws is not None:
                    with contextlib.suppress(Exception):
                        c.ws.transport.resume_reading()

    @staticmethod
    def _pause(client: WsClient) -> None:
        if client.ws is not None:
            with contextlib.suppress(Exception):
                client.ws.transport.pause_reading()

    def open_clients(self, venue: str | None = None) -> list[WsClient]:
        """Connections still open, optionally of one venue."""
        return [c for c in self.clients if c.open and venue in (None, c.venue)]

    async def broadcast_kline(self, series: CandleSeries, index: int, state: Mapping[str, float],
                              confirm: bool, event_ms: int, fraction: float) -> int:
        """Send one kline update to every subscriber; returns the number of sends."""
        _, interval, b_interval = TIMEFRAMES[series.timeframe]
        sym = market_id(series.symbol)
        texts = {
            "bybit": (f"kline.{interval}.{sym}",
                      json.dumps(bybit_message(series, index, state, confirm, event_ms))),
            "binance": (f"{sym.lower()}@kline_{b_interval}",
                        json.dumps(binance_message(series, index, state, confirm, event_ms,
                                                   fraction))),
        }
        if confirm:
            series.last_confirmed = {venue: text for venue, (_, text) in texts.items()}
        return await self.broadcast_topic(texts, int(series.ts[index]), confirm)

    async def broadcast_topic(self, texts: Mapping[str, tuple[str, str]], open_ms: int,
                              confirm: bool) -> int:
        """Send ``texts[venue] = (topic, text)`` to that venue's subscribers of ``topic``."""
        sent = 0
        for client in self.open_clients():
            topic, text = texts.get(client.venue, ("", ""))
            if topic not in client.topics:
                continue
            if self.stalled:
                self.dropped_while_stalled += 1
                continue
            if client.combined:
                text = f'{{"stream":"{topic}","data":{text}}}'
            if await self._send(client, text):
                sent += 1
                if confirm:
                    self.sent_confirmed.append(SentConfirmed(
                        client.venue, client.conn_id, topic, open_ms, time.perf_counter()))
        return sent

    async def send_raw(self, text: str, venue: str | None = None) -> int:
        """Send ``text`` verbatim to every open connection (of ``venue``)."""
        results = [await self._send(c, text) for c in self.open_clients(venue)]
        return sum(results)

    async def _send(self, client: WsClient, text: str) -> bool:
        if client.ws is None:
            return False
        try:
            await client.ws.send(text)
            return True
        except ConnectionClosed:
            return False

    async def drop(self, venue: str | None = None) -> int:
        """Abort TCP connections without a close frame (the client sees code 1006)."""
        clients = self.open_clients(venue)
        for c in clients:
            if c.ws is not None:
                c.ws.transport.abort()
        await self._wait_closed(clients)
        return len(clients)

    async def close(self, code: int, reason: str, venue: str | None = None) -> int:
        """Close connections with a proper close frame."""
        clients = self.open_clients(venue)
        for c in clients:
            if c.ws is not None:
                c.ws.transport.resume_reading()
                await c.ws.close(code, reason)
        await self._wait_closed(clients)
        return len(clients)

    async def _wait_closed(self, clients: Iterable[WsClient]) -> None:
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.changed.wait_for(lambda: not any(c.open for c in clients)), 5)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    # -- connection handling ------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        url = urlsplit(ws.request.path)
        path = url.path.rstrip("/")
        if path in ("/v5/public/spot", "/v5/public/linear"):
            conn_id = str(uuid.uuid4()) if path.endswith("spot") else (
                f"{secrets.token_hex(10)}-{secrets.randbelow(10**4):x}")
            client = WsClient(conn_id, "bybit", path.rsplit("/", 1)[1], path, ws=ws)
        elif path == "/ws" or path.startswith("/ws/") or path == "/stream":
            client = WsClient(str(uuid.uuid4()), "binance", "spot", path, ws=ws,
                              combined=path == "/stream")
            names = path[4:].split("/") if path.startswith("/ws/") else (
                parse_qs(url.query).get("streams", [""])[0].split("/"))
            client.topics.update(n for n in names if n)
        else:
            await ws.close(1008, f"unknown path {path}")
            return
        self.clients.append(client)
        if self.stalled:
            self._pause(client)
        pinger = None
        if client.venue == "binance":
            pinger = asyncio.create_task(self._binance_pinger(client))
            self._tasks.add(pinger)
        await self._notify()
        try:
            async for raw in ws:
                text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                client.received.append(text)
                if client.venue == "bybit":
                    await self._on_bybit(client, text)
                else:
                    await self._on_binance(client, text)
        except ConnectionClosed:
            pass
        finally:
            client.open = False
            if pinger is not None:
                pinger.cancel()
                self._tasks.discard(pinger)
            await self._notify()

    async def _on_bybit(self, client: WsClient, text: str) -> None:
        try:
            msg = json.loads(text)
            op, args = msg.get("op"), msg.get("args") or []
        except (ValueError, AttributeError):
            msg, op, args = {}, None, []
        base: dict[str, Any] = {"conn_id": client.conn_id}
        if "req_id" in msg:
            base["req_id"] = msg["req_id"]
        if op == "ping":
            client.app_pings += 1
            if self.bybit_pong_style.get(client.category) == "op_pong":
                reply = {"req_id": msg.get("req_id", ""), "op": "pong",
                         "args": [str(int(time.time() * 1000))], "conn_id": client.conn_id}
            else:
                reply = {"success": True, "ret_msg": "pong", **base, "op": "ping"}
        elif op in ("subscribe", "unsubscribe") and isinstance(args, list):
            topics = tuple(str(a) for a in args)
            client.history.append((op, topics))
            error = ""
            if op == "subscribe":
                bad = [t for t in topics if t not in self.bybit_topics and not (
                    self.tickers is not None and self.tickers.serves(client, t))]
                dup = [t for t in topics if t in client.topics]
                error = (f"error:handler not found,topic:{bad[0]}" if bad else
                         f"error:already subscribed,topic:{dup[0]}" if dup else "")
                if not error:
                    client.topics.update(topics)
            else:
                client.topics.difference_update(topics)
            ok_msg = op if (client.category == "spot" and op == "subscribe") else ""
            reply = {"success": not error, "ret_msg": error or ok_msg, **base, "op": op}
            await self._notify()
        else:
            reply = {"success": False, "ret_msg": f"error:unsupported request: {text[:100]}",
                     **base, "op": op if isinstance(op, str) else ""}
        await self._send(client, json.dumps(reply))
        if op == "subscribe" and reply["success"] and self.tickers is not None:
            await self.tickers.on_subscribed(client, args)

    async def _on_binance(self, client: WsClient, text: str) -> None:
        reply: dict[str, Any]
        try:
            msg = json.loads(text)
            method, req_id = msg["method"], msg.get("id")
            params = [str(p) for p in msg.get("params") or []]
        except ValueError:
            method, req_id, params = None, None, []
            reply = {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}
        except (KeyError, TypeError, AttributeError):
            method, req_id, params = None, None, []
            reply = {"code": 2, "msg": "Invalid request: missing field `method`"}
        if method is None:
            pass
        elif method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            client.history.append((method, tuple(params)))
            if method == "SUBSCRIBE":
                client.topics.update(params)
            else:
                client.topics.difference_update(params)
            reply = {"result": None, "id": req_id}
            await self._notify()
        elif method == "LIST_SUBSCRIPTIONS":
            reply = {"result": sorted(client.topics), "id": req_id}
        else:
            reply = {"code": 2, "msg": f"Invalid request: unknown variant {method}", "id": req_id}
        await self._send(client, json.dumps(reply))

    async def _binance_pinger(self, client: WsClient) -> None:
        """Ping frames every ``binance_ping_interval`` s; no pong within the timeout -> close."""
        assert client.ws is not None
        while client.open:
            await asyncio.sleep(self.binance_ping_interval)
            if self.stalled:
                continue
            sent_at = time.monotonic()
            try:
                waiter = await client.ws.ping(str(int(time.time() * 1000)))
                await asyncio.wait_for(waiter, self.binance_pong_timeout)
                client.pongs += 1
            except TimeoutError:
                if self.stall_started >= sent_at or self.stalled:
                    continue  # our own stall kept the pong unread: not the client's fault
                await client.ws.close(1008, "pong timeout")
                return
            except ConnectionClosed:
                return
