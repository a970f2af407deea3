"""Local exchange stand-in for tests: Bybit v5 / Binance spot websockets plus the REST endpoints
that ccxt uses, all on 127.0.0.1, serving real candles from in-memory arrays.

Usage::

    series = CandleSeries.from_parquet(DATA / "binance_BTC-USDT_1m.parquet", "BTC/USDT", "1m",
                                       count=3000, cursor=2500)
    async with ExchangeStandin([series]) as ex:
        ex.ws_url("bybit", "spot")     # ws://127.0.0.1:P/v5/public/spot (also "linear")
        ex.ws_url("binance")           # ws://127.0.0.1:P/ws  (/ws/<stream>, /stream?streams=)
        ex.rest_url                    # http://127.0.0.1:Q  -> make_exchange(..., rest_url=...)
        await ex.emit_candle("BTC/USDT", "1m", ticks=3)

Clock and replay cursor: each series has a cursor, the index of its first candle that is not
closed. REST serves only candles before the cursor; :meth:`ExchangeStandin.emit_candle` pushes
candle ``cursor`` (unconfirmed ticks, then the confirmed update) and advances the cursor. The
clock (:attr:`ExchangeStandin.now_ms`, server time of the REST ``time`` endpoints) is the latest
close time of a closed candle. Message timestamps (Bybit ``ts``/``timestamp``, Binance ``E``) are
on that simulated clock, not wall time.

Protocol (see exchange_ws / exchange_rest for the doc sources):

* Bybit ``/v5/public/{spot,linear}``: ``{"op":"subscribe","args":["kline.1.BTCUSDT"],
  "req_id":"x"}`` -> ``{"success":true,"ret_msg":"subscribe"|"" (spot|linear),"conn_id":..,
  "req_id":"x","op":"subscribe"}``; unknown topic -> success false, ``ret_msg``
  ``error:handler not found,topic:<t>``; ``{"op":"ping"}`` -> spot
  ``{"success":true,"ret_msg":"pong","conn_id":..,"req_id":..,"op":"ping"}``, linear
  ``{"req_id":..,"op":"pong","args":["<ms>"],"conn_id":..}`` (see ``bybit_pong_style``).
* Bybit ``/v5/public/linear`` also serves ``tickers.BTCUSDT`` (open interest, funding rate, next
  funding time: ``exchange_tickers``): a snapshot on subscribing, a delta before each confirmed
  kline of that market, stamped at the candle's close (``ExchangeStandin.tickers``).
* Binance ``/ws``: ``{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":1}`` ->
  ``{"result":null,"id":1}``; ping frames every ``binance_ping_interval`` s, connection closed
  (1008) if no pong within ``binance_pong_timeout`` s.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from tests.standins.exchange_rest import RestRequest, RestServer
from tests.standins.exchange_tickers import TickerStream
from tests.standins.exchange_ws import (
    TIMEFRAMES,
    Candle,
    CandleSeries,
    SentConfirmed,
    WsClient,
    WsHub,
    market_id,
    tick_path,
)

__all__ = ["Candle", "CandleSeries", "ExchangeStandin", "RestRequest", "SentConfirmed",
           "WsClient"]


class ExchangeStandin:
    """Bybit/Binance stand-in: websockets server + aiohttp REST server + test control API.

    Args:
        series: candle series; a unified symbol serves spot and linear markets alike.
        binance_ping_interval: seconds between Binance server ping frames (real: 20).
        binance_pong_timeout: seconds without pong before Binance closes (real: 60).
        bybit_pong_style: per Bybit category, ``"ret_msg"`` or ``"op_pong"`` pong shape.

    Raises:
        ValueError: duplicate (symbol, timeframe) series.
    """

    def __init__(self, series: Iterable[CandleSeries], *, binance_ping_interval: float = 20.0,
                 binance_pong_timeout: float = 60.0,
                 bybit_pong_style: dict[str, str] | None = None) -> None:
        self.series: dict[tuple[str, str], CandleSeries] = {}
        for s in series:
            if (s.symbol, s.timeframe) in self.series:
                raise ValueError(f"duplicate series {(s.symbol, s.timeframe)}")
            self.series[(s.symbol, s.timeframe)] = s
        self.ws = WsHub(self.series, binance_ping_interval=binance_ping_interval,
                        binance_pong_timeout=binance_pong_timeout,
                        bybit_pong_style=bybit_pong_style or {"spot": "ret_msg",
                                                              "linear": "op_pong"})
        self.rest = RestServer(self.series, lambda: self.now_ms)
        self.tickers = TickerStream(self.ws, self.rest.derivs)
        self.ws.tickers = self.tickers

    async def __aenter__(self) -> ExchangeStandin:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start both servers on free ports."""
        await self.ws.start()
        await self.rest.start()

    async def stop(self) -> None:
        """Close every connection and both servers."""
        await self.ws.stop()
        await self.rest.stop()

    # -- addresses and clock -----------------------------------------------------------------------

    def ws_url(self, venue: str, category: str = "spot") -> str:
        """Websocket URL: bybit ``/v5/public/<category>`` (spot|linear), binance ``/ws``.

        Raises ValueError for another venue or category."""
        if venue == "bybit" and category in ("spot", "linear"):
            return f"ws://127.0.0.1:{self.ws.port}/v5/public/{category}"
        if venue == "binance" and category == "spot":
            return f"ws://127.0.0.1:{self.ws.port}/ws"
        raise ValueError(f"no websocket for {venue!r}/{category!r}")

    @property
    def rest_url(self) -> str:
        """Base URL for ``make_exchange(..., rest_url=...)`` (binance and bybit paths alike)."""
        return f"http://127.0.0.1:{self.rest.port}"

    @property
    def now_ms(self) -> int:
        """Simulated clock in ms: the latest close time among closed candles."""
        closes = [int(s.ts[s.cursor - 1]) + s.duration_ms for s in self.series.values()
                  if s.cursor > 0]
        return max(closes, default=0)

    def get(self, symbol: str, timeframe: str) -> CandleSeries:
        """The series for (unified symbol, ccxt timeframe); KeyError if absent."""
        return self.series[(symbol, timeframe)]

    def cursor(self, symbol: str, timeframe: str) -> int:
        """Index of the next candle to emit (= number of closed candles)."""
        return self.get(symbol, timeframe).cursor

    def seek(self, symbol: str, timeframe: str, index: int) -> None:
        """Move the replay cursor (REST then serves ``[0, index)``); drops partial state."""
        s = self.get(symbol, timeframe)
        if not 0 <= index <= len(s):
            raise IndexError(f"cursor {index} outside [0, {len(s)}]")
        s.cursor, s.live = index, None

    # -- pushes ---------------------------------------------------------------------------------

    async def emit_candle(self, symbol: str, timeframe: str, *, ticks: int = 0,
                          tick_interval: float = 0.0) -> Candle:
        """Push candle ``cursor``: ``ticks`` unconfirmed updates then the confirmed one.

        Tick k of N reports (high, low, close) after k/N of the path open->low->high->close
        (open->high->low->close for a bearish candle) and volume*k/N, merged with any prices
        pushed by :meth:`push_tick`. The cursor advances *before* the confirmed update is
        sent, so REST already serves the candle when a client sees it closed. The confirmed
        update always carries the stored OHLCV exactly.

        Returns the emitted candle. Raises IndexError when the series is exhausted.
        """
        s = self.get(symbol, timeframe)
        if s.cursor >= len(s):
            raise IndexError(f"{symbol} {timeframe}: no candle left to emit")
        index, c = s.cursor, s.candle(s.cursor)
        for k in range(1, ticks + 1):
            high, low, close = tick_path(c, k / ticks)
            live = s.live or {}
            state = {"open": c.open, "high": max(high, live.get("high", high)),
                     "low": min(low, live.get("low", low)), "close": close,
                     "volume": c.volume * k / ticks}
            s.live = state
            event = c.ts + math.floor(s.duration_ms * k / (ticks + 1))
            await self.ws.broadcast_kline(s, index, state, False, event, k / (ticks + 1))
            if tick_interval:
                await asyncio.sleep(tick_interval)
        s.cursor, s.live = index + 1, None
        await self.tickers.push(symbol, c.ts + s.duration_ms)  # the state at the close
        final = {"open": c.open, "high": c.high, "low": c.low, "close": c.close,
                 "volume": c.volume}
        await self.ws.broadcast_kline(s, index, final, True, c.ts + s.duration_ms, 1.0)
        return c

    async def replay(self, symbol: str, timeframe: str, count: int, *, ticks: int = 0,
                     yield_every: int = 1) -> list[Candle]:
        """Fast replay: emit ``count`` candles back to back, yielding to the event loop every
        ``yield_every`` candles (0 = never). Returns the emitted candles."""
        out = []
        for n in range(count):
            out.append(await self.emit_candle(symbol, timeframe, ticks=ticks))
            if yield_every and (n + 1) % yield_every == 0:
                await asyncio.sleep(0)
        return out

    async def push_tick(self, symbol: str, timeframe: str, price: float,
                        volume: float | None = None) -> dict[str, float]:
        """Push one unconfirmed update of candle ``cursor`` whose last price is ``price``
        (e.g. a wick through a stop-loss); high/low widen to include it. The later confirmed
        update still carries the stored OHLCV. Returns the partial state sent."""
        s = self.get(symbol, timeframe)
        if s.cursor >= len(s):
            raise IndexError(f"{symbol} {timeframe}: no candle left")
        c = s.candle(s.cursor)
        live = s.live or {"open": c.open, "high": c.open, "low": c.open, "close": c.open,
                          "volume": 0.0}
        s.live = {**live, "high": max(live["high"], price), "low": min(live["low"], price),
                  "close": float(price),
                  "volume": live["volume"] if volume is None else float(volume)}
        await self.ws.broadcast_kline(s, s.cursor, s.live, False,
                                      c.ts + s.duration_ms // 2, 0.5)
        return dict(s.live)

    async def send_confirmed(self, symbol: str, timeframe: str, index: int) -> int:
        """Send the confirmed update of any candle (index < cursor-1: out of order) without
        touching the cursor. Returns the number of connections it was sent to."""
        s = self.get(symbol, timeframe)
        c = s.candle(index)
        state = {"open": c.open, "high": c.high, "low": c.low, "close": c.close,
                 "volume": c.volume}
        return await self.ws.broadcast_kline(s, index, state, True, c.ts + s.duration_ms, 1.0)

    async def resend_last_confirmed(self, symbol: str, timeframe: str) -> int:
        """Re-send, byte for byte, the last confirmed update of the series (a duplicate)."""
        s = self.get(symbol, timeframe)
        if not s.last_confirmed:
            raise RuntimeError("nothing confirmed yet")
        b_interval = TIMEFRAMES[timeframe][2]
        topics = {"bybit": f"kline.{TIMEFRAMES[timeframe][1]}.{market_id(symbol)}",
                  "binance": f"{market_id(symbol).lower()}@kline_{b_interval}"}
        texts = {v: (topics[v], t) for v, t in s.last_confirmed.items()}
        open_ms = json.loads(s.last_confirmed["binance"])["k"]["t"]
        return await self.ws.broadcast_topic(texts, open_ms, True)

    async def send_raw(self, text: str, *, venue: str | None = None) -> int:
        """Send ``text`` verbatim (e.g. malformed JSON) to every open connection of ``venue``."""
        return await self.ws.send_raw(text, venue)

    # -- faults ---------------------------------------------------------------------------------

    async def drop_connections(self, *, venue: str | None = None) -> int:
        """Abort connections abruptly (no close frame; client sees 1006). Returns count."""
        return await self.ws.drop(venue)

    async def close_connections(self, code: int = 1001, reason: str = "",
                                *, venue: str | None = None) -> int:
        """Close connections cleanly with ``code``. Returns count."""
        return await self.ws.close(code, reason, venue)

    def stall(self, seconds: float) -> None:
        """For ``seconds``: send nothing (pushes are dropped, server pings skipped) and read
        nothing (so neither app-level nor protocol pings are answered, nor close frames: a
        client closing during a stall waits its close_timeout). Returns at once."""
        self.ws.stall(seconds)

    def resume(self) -> None:
        """End a stall early."""
        self.ws.resume()

    def fail_next_rest(self, count: int, status: int = 429, *, venue: str | None = None) -> None:
        """Fail the next ``count`` REST requests (of ``venue``): 429 -> Binance HTTP 429
        ``{"code":-1003,..}`` / Bybit HTTP 200 ``retCode`` 10006; 5xx -> that status with an
        HTML body (as a proxy/load balancer sends)."""
        self.rest.failures.extend([(status, venue)] * count)

    # -- records and waits ----------------------------------------------------------------------

    @property
    def connections(self) -> list[WsClient]:
        """Every websocket connection so far (open or closed), with its subscriptions."""
        return self.ws.clients

    @property
    def sent_confirmed(self) -> list[SentConfirmed]:
        """Confirmed updates sent, with ``perf_counter()`` right after each send."""
        return self.ws.sent_confirmed

    @property
    def rest_requests(self) -> list[RestRequest]:
        """Every REST request received (including failed and unknown ones)."""
        return self.rest.requests

    @property
    def unknown_routes(self) -> list[str]:
        """``"METHOD /path?query"`` of requests that got 404."""
        return self.rest.unknown

    async def wait_for_subscription(self, venue: str, topic: str, *, count: int = 1,
                                    timeout: float = 5.0) -> list[WsClient]:
        """Wait until ``count`` open connections of ``venue`` subscribe ``topic``.

        Raises TimeoutError after ``timeout`` seconds."""
        def ready() -> list[WsClient]:
            return [c for c in self.ws.open_clients(venue) if topic in c.topics]

        async with self.ws.changed:
            await asyncio.wait_for(self.ws.changed.wait_for(lambda: len(ready()) >= count),
                                   timeout)
        return ready()

    async def wait_for_connections(self, count: int, *, venue: str | None = None,
                                   timeout: float = 5.0) -> list[WsClient]:
        """Wait until ``count`` connections of ``venue`` are open. Raises TimeoutError."""
        async with self.ws.changed:
            await asyncio.wait_for(self.ws.changed.wait_for(
                lambda: len(self.ws.open_clients(venue)) >= count), timeout)
        return self.ws.open_clients(venue)

    def describe(self) -> dict[str, Any]:
        """Small summary (cursors, connections, request count) for debugging failed tests."""
        return {"cursors": {f"{k[0]} {k[1]}": s.cursor for k, s in self.series.items()},
                "connections": [(c.venue, c.category, sorted(c.topics), c.open)
                                for c in self.connections],
                "rest_requests": len(self.rest_requests), "unknown": self.unknown_routes}
