"""Ticker half of the exchange stand-in: Bybit v5 linear ``tickers.{SYMBOL}`` pushes.

Format (https://bybit-exchange.github.io/docs/v5/websocket/public/ticker): subscribing on
``/v5/public/linear`` to ``tickers.BTCUSDT`` answers the usual ack, then a ``snapshot``::

    {"topic": "tickers.BTCUSDT", "type": "snapshot", "cs": 1, "ts": <ms>,
     "data": {"symbol": "BTCUSDT", "openInterest": "50123.4", "openInterestValue": "…",
              "fundingRate": "0.0001", "nextFundingTime": "<ms>", "markPrice": "…", …}}

then ``delta`` pushes with only the fields that changed (real Bybit: every 100 ms; here one
before each confirmed kline, stamped at that candle's close, so a run reads the state at the
close). Values come from the REST derivatives store (``exchange_derivs.DerivStore``), so the
stream and the REST history agree: ``openInterest`` is the newest 5-minute sample at or before
the push time; ``nextFundingTime`` the first settlement after it and ``fundingRate`` the rate
that settlement has in the funding history. Spot has no such topic here (Bybit's spot tickers
carry no open interest).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from tests.standins.exchange_derivs import DerivStore
from tests.standins.exchange_ws import WsClient, WsHub, fmt, market_id


class TickerStream:
    """Bybit linear ticker topics of the stand-in's markets.

    Args:
        hub: the websocket hub (for sending).
        derivs: the REST derivatives store (open interest and funding of each market).
    """

    def __init__(self, hub: WsHub, derivs: DerivStore) -> None:
        self.hub = hub
        self.derivs = derivs
        self.cs = 0
        self.sent: list[dict[str, Any]] = []  # every ticker message, as sent
        self._last: dict[str, dict[str, str]] = {}  # topic → fields last pushed

    def serves(self, client: WsClient, topic: str) -> bool:
        """True for ``tickers.{MARKET}`` of a served market on a linear connection."""
        if client.category != "linear" or not topic.startswith("tickers."):
            return False
        return self.derivs.oi_of(topic.split(".", 1)[1]) is not None

    def fields(self, mid: str, ts: int) -> dict[str, str]:
        """The ticker fields of market ``mid`` at ``ts`` (ms UTC), as Bybit strings."""
        out: dict[str, str] = {"symbol": mid}
        oi = self.derivs.oi_of(mid)
        if oi is not None:
            k = int(np.searchsorted(oi[0], ts, side="right")) - 1
            if k >= 0:
                series = self.derivs._candles(mid)
                price = float(self.derivs.price_at(series, np.array([ts]))[0]) if series \
                    else 0.0
                out.update(openInterest=fmt(oi[1][k]), openInterestValue=fmt(oi[1][k] * price),
                           markPrice=fmt(price))
        funding = self.derivs.funding_of(mid)
        if funding is not None and len(funding[0]):
            k = int(np.searchsorted(funding[0], ts, side="right"))
            if k < len(funding[0]):
                out.update(fundingRate=fmt(funding[1][k]),
                           nextFundingTime=str(int(funding[0][k])))
            else:  # after the history: the next settlement's rate is not known yet
                out["nextFundingTime"] = str(int(funding[0][-1]) + 8 * 3_600_000)
        return out

    async def on_subscribed(self, client: WsClient, topics: Iterable[str]) -> None:
        """Send the snapshot of each ticker topic just subscribed (at the stand-in clock)."""
        now = self.derivs.clock_ms()
        for topic in topics:
            if topic.startswith("tickers.") and self.serves(client, topic):
                data = self.fields(topic.split(".", 1)[1], now)
                self._last[topic] = data
                await self.hub._send(client, self._message(topic, "snapshot", now, data))

    async def push(self, symbol: str, ts: int) -> int:
        """Push the delta of ``symbol``'s ticker at ``ts`` (the fields that changed since the
        last push) to its subscribers; returns the number of sends."""
        topic = f"tickers.{market_id(symbol)}"
        data = self.fields(market_id(symbol), ts)
        last = self._last.get(topic, {})
        delta = {k: v for k, v in data.items() if k == "symbol" or last.get(k) != v}
        self._last[topic] = {**last, **data}
        return await self.send(topic, delta, ts)

    async def send(self, topic: str, data: Any, ts: int, kind: str = "delta") -> int:
        """Send one ticker message with ``data`` as given (tests: odd or malformed values)."""
        text = self._message(topic, kind, ts, data)
        return await self.hub.broadcast_topic({"bybit": (topic, text)}, ts, False)

    def _message(self, topic: str, kind: str, ts: int, data: Any) -> str:
        self.cs += 1
        message = {"topic": topic, "type": kind, "data": data, "cs": self.cs, "ts": ts}
        self.sent.append(message)
        return json.dumps(message)
