"""Kline stream protocols of the exchanges: topics, control messages, parsing.

Each protocol turns (symbol, timeframe) into a stream topic, builds subscribe/unsubscribe/ping
messages, and parses a text frame into ``KlineUpdate``s (and, on Bybit's linear stream, the
perpetuals' ``TickerUpdate``s: ``data.live.tickers``). Unclosed updates are ticks; the
update flagged closed (Bybit ``confirm``, Binance ``k.x``) is the closed candle. Parsing checks
types only (a field of the wrong type makes the frame a ``MalformedMessage``); whether the
values make a plausible candle is ``data.live.sanity``'s job.

Sources: Bybit v5 public websocket, https://bybit-exchange.github.io/docs/v5/ws/connect and
…/v5/websocket/public/kline; Binance spot, binance-spot-api-docs ``web-socket-streams.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from data.live.tickers import TickerError, TickerUpdate, parse_bybit_ticker
from data.ohlcv import Candle

_BYBIT_INTERVALS = {"1m": "1", "3m": "3", "5m": "5", "15m": "15", "30m": "30", "1h": "60",
                    "2h": "120", "4h": "240", "6h": "360", "12h": "720", "1d": "D", "1w": "W"}
_BYBIT_TIMEFRAMES = {v: k for k, v in _BYBIT_INTERVALS.items()}
_BINANCE_INTERVALS = {tf: tf for tf in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h",
                                        "8h", "12h", "1d", "3d", "1w")}


class MalformedMessage(ValueError):
    """A frame that is not valid JSON or not a well-formed kline/control message."""


class UnsupportedTimeframe(ValueError):
    """The exchange has no kline stream for that timeframe."""


@dataclass(frozen=True, slots=True)
class KlineUpdate:
    """One kline update: the candle so far (``closed`` False) or final (``closed`` True).

    ``market`` is the exchange's market id (``BTCUSDT``); ``event_ts`` the exchange's event time
    (ms UTC); candle values in quote currency / base units.
    """

    topic: str
    market: str
    timeframe: str
    candle: Candle
    closed: bool
    event_ts: int


def market_id(symbol: str) -> str:
    """``"BTC/USDT"`` or ``"BTC/USDT:USDT"`` → ``"BTCUSDT"``."""
    return symbol.split(":", 1)[0].replace("/", "").upper()


def _ms(value: Any, what: str) -> int:
    """A time in ms from a JSON integer (or integral float) or a string of ASCII digits.

    Raises:
        MalformedMessage: for anything else (booleans, fractions, NaN, words, lists).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    raise MalformedMessage(f"bad {what} {str(value)[:40]!r}")


def _price(value: Any, what: str) -> float:
    """A price or volume from a JSON number or numeric string (range checks: ``sanity``).

    Raises:
        MalformedMessage: for booleans, non-numeric strings, lists, objects, huge integers.
    """
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except (ValueError, OverflowError):
            pass
    raise MalformedMessage(f"bad {what} {str(value)[:40]!r}")


def _flag(value: Any, what: str) -> bool:
    """A JSON boolean (absent = False).

    Raises:
        MalformedMessage: for anything else (a string ``"false"`` would read as True).
    """
    if value is None or isinstance(value, bool):
        return bool(value)
    raise MalformedMessage(f"bad {what} {str(value)[:40]!r}")


def _candle(ts: Any, o: Any, h: Any, low: Any, c: Any, v: Any) -> Candle:
    """A ``Candle`` from raw kline fields (types only; ``data.live.sanity`` checks values).

    Raises:
        MalformedMessage: for a field of the wrong type.
    """
    return Candle(_ms(ts, "kline start"), _price(o, "open"), _price(h, "high"),
                  _price(low, "low"), _price(c, "close"), _price(v, "volume"))


def _event_ms(*values: Any) -> int:
    """The first of ``values`` that is present, as ms (0 when none is).

    Raises:
        MalformedMessage: when that value is not a time in ms.
    """
    for value in values:
        if value is not None and value != "":
            return _ms(value, "event time")
    return 0


def _loads(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: deep nesting
        raise MalformedMessage(f"not JSON ({type(exc).__name__})") from None


class BybitProtocol:
    """Bybit v5 public kline streams (``/v5/public/spot``, ``/v5/public/linear``), and the
    ticker stream of linear perpetuals (``tickers.{MARKET}``: open interest and funding).

    The client pings with ``{"op":"ping"}`` every 20 s (Bybit drops silent connections);
    a spot subscribe request may carry at most 10 topics.
    """

    name = "bybit"
    ping_interval = 20.0
    protocol_pings = False
    max_topics = 10

    def topic(self, symbol: str, timeframe: str) -> str:
        """``kline.{interval}.{MARKET}``, e.g. ``kline.1.BTCUSDT``."""
        if timeframe not in _BYBIT_INTERVALS:
            raise UnsupportedTimeframe(f"bybit has no {timeframe} kline stream; use one of "
                                       f"{', '.join(_BYBIT_INTERVALS)}")
        return f"kline.{_BYBIT_INTERVALS[timeframe]}.{market_id(symbol)}"

    def ticker_topic(self, symbol: str) -> str:
        """``tickers.{MARKET}`` of a perpetual, e.g. ``tickers.BTCUSDT``."""
        return f"tickers.{market_id(symbol)}"

    def subscribe(self, topics: list[str], req_id: int) -> str:
        """The subscribe request for ``topics``."""
        return json.dumps({"op": "subscribe", "args": topics, "req_id": str(req_id)})

    def unsubscribe(self, topics: list[str], req_id: int) -> str:
        """The unsubscribe request for ``topics``."""
        return json.dumps({"op": "unsubscribe", "args": topics, "req_id": str(req_id)})

    def ping(self) -> str | None:
        """The application-level ping."""
        return json.dumps({"op": "ping"})

    def parse(self, text: str | bytes) -> list[KlineUpdate | TickerUpdate]:
        """Kline (or ticker) updates in a frame; ``[]`` for acks and pongs.

        Raises:
            MalformedMessage: for anything that is neither.
        """
        msg = _loads(text)
        if not isinstance(msg, dict):
            raise MalformedMessage(f"unexpected frame {str(text[:80])!r}")
        topic = msg.get("topic")
        if topic is None:
            if "op" in msg or "success" in msg:
                if msg.get("success") is False:
                    reason = str(msg.get("ret_msg"))[:200]
                    raise MalformedMessage(f"bybit refused a request: {reason}")
                return []
            raise MalformedMessage(f"unexpected frame {str(text[:80])!r}")
        parts = str(topic).split(".")
        if len(parts) == 2 and parts[0] == "tickers" and parts[1]:
            try:
                return [parse_bybit_ticker(msg, str(topic))]
            except TickerError as exc:
                raise MalformedMessage(str(exc)) from None
        if len(parts) != 3 or parts[0] != "kline" or parts[1] not in _BYBIT_TIMEFRAMES:
            raise MalformedMessage(f"unexpected topic {str(topic)[:80]!r}")
        timeframe = _BYBIT_TIMEFRAMES[parts[1]]
        items = msg.get("data")
        if not isinstance(items, list):
            raise MalformedMessage(f"kline push without data list on {topic}")
        out: list[KlineUpdate | TickerUpdate] = []
        for item in items:
            if not isinstance(item, dict):
                raise MalformedMessage(f"bad kline item on {topic}")
            candle = _candle(item.get("start"), item.get("open"), item.get("high"),
                             item.get("low"), item.get("close"), item.get("volume"))
            out.append(KlineUpdate(topic, parts[2], timeframe, candle,
                                   _flag(item.get("confirm"), "confirm"),
                                   _event_ms(item.get("timestamp"), msg.get("ts"))))
        return out


class BinanceProtocol:
    """Binance spot kline streams on the raw ``/ws`` endpoint (combined frames also accepted).

    The server sends ping frames every 20 s and the websockets library answers them; the
    client adds its own protocol pings so a dead link is noticed from our side too.
    """

    name = "binance"
    ping_interval = 20.0
    protocol_pings = True
    max_topics = 200

    def topic(self, symbol: str, timeframe: str) -> str:
        """``{market}@kline_{interval}``, e.g. ``btcusdt@kline_1m``."""
        if timeframe not in _BINANCE_INTERVALS:
            raise UnsupportedTimeframe(f"binance has no {timeframe} kline stream; use one of "
                                       f"{', '.join(_BINANCE_INTERVALS)}")
        return f"{market_id(symbol).lower()}@kline_{timeframe}"

    def subscribe(self, topics: list[str], req_id: int) -> str:
        """The SUBSCRIBE request for ``topics``."""
        return json.dumps({"method": "SUBSCRIBE", "params": topics, "id": req_id})

    def unsubscribe(self, topics: list[str], req_id: int) -> str:
        """The UNSUBSCRIBE request for ``topics``."""
        return json.dumps({"method": "UNSUBSCRIBE", "params": topics, "id": req_id})

    def ping(self) -> str | None:
        """No application-level ping: Binance uses websocket ping frames."""
        return None

    def ticker_topic(self, symbol: str) -> str:
        """No ticker path: forward runs on Binance trade spot only.

        Raises:
            ValueError: always.
        """
        raise ValueError(f"no live open interest and funding stream for {symbol} on binance; "
                         "forward runs on perpetuals use bybit")

    def parse(self, text: str | bytes) -> list[KlineUpdate | TickerUpdate]:
        """Kline updates in a frame; ``[]`` for request results.

        Raises:
            MalformedMessage: for anything else.
        """
        msg = _loads(text)
        if isinstance(msg, dict) and "stream" in msg and "data" in msg:
            msg = msg["data"]
        if not isinstance(msg, dict):
            raise MalformedMessage(f"unexpected frame {str(text[:80])!r}")
        if "result" in msg and "id" in msg:
            return []
        if "code" in msg and "msg" in msg:
            raise MalformedMessage(f"binance refused a request: {str(msg['msg'])[:200]}")
        k = msg.get("k")
        if msg.get("e") != "kline" or not isinstance(k, dict):
            raise MalformedMessage(f"unexpected frame {str(text[:80])!r}")
        timeframe = str(k.get("i"))
        if timeframe not in _BINANCE_INTERVALS:
            raise MalformedMessage(f"unexpected kline interval {timeframe!r}")
        candle = _candle(k.get("t"), k.get("o"), k.get("h"), k.get("l"), k.get("c"), k.get("v"))
        market = str(k.get("s") or msg.get("s") or "")
        topic = f"{market.lower()}@kline_{timeframe}"
        return [KlineUpdate(topic, market, timeframe, candle, _flag(k.get("x"), "x"),
                            _event_ms(msg.get("E")))]


def protocol_for(exchange: str) -> BybitProtocol | BinanceProtocol:
    """The kline protocol of ``exchange``.

    Raises:
        ValueError: for an exchange without a live feed here (bybit and binance only).
    """
    if exchange == "bybit":
        return BybitProtocol()
    if exchange == "binance":
        return BinanceProtocol()
    raise ValueError(f"no live feed for {exchange!r}; forward runs support bybit and binance")


def default_ws_url(exchange: str, linear: bool) -> str:
    """The public stream URL of ``exchange`` (``linear`` picks Bybit's USDT perpetuals)."""
    if exchange == "bybit":
        return f"wss://stream.bybit.com/v5/public/{'linear' if linear else 'spot'}"
    if exchange == "binance":
        return "wss://stream.binance.com:9443/ws"
    raise ValueError(f"no live feed for {exchange!r}; forward runs support bybit and binance")
