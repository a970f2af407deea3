"""Live kline feeds over websockets: one connection per exchange stream URL, shared by all runs.

A ``LiveFeed`` keeps one connection to one stream URL and carries every subscription on it.
It pings per the exchange's rules, treats a connection silent for ``silence_timeout`` seconds as
dead, reconnects with exponential backoff and jitter, and re-subscribes. Each subscriber gets its
own queue of ``KlineUpdate``s and ``FeedStatus`` changes; the consumer (a forward run) backfills
missed candles through REST when the feed comes back.

Per topic, a closed candle older than or equal to the last one delivered (a duplicate or an
out-of-order message) is dropped, and so is a tick of a candle already closed. Malformed frames
are logged and skipped. None of these stop the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from data.live.messages import BinanceProtocol, BybitProtocol, MalformedMessage

log = logging.getLogger(__name__)


class FeedSilent(Exception):
    """No frame arrived within the silence timeout."""


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """The feed went down (``connected`` False) or came back (True); ``ts`` wall-clock ms."""

    connected: bool
    detail: str
    ts: int


@dataclass(eq=False)
class Subscription:
    """A subscriber's view of one topic: read ``queue`` for updates and status changes."""

    topic: str
    symbol: str
    timeframe: str
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)


@dataclass
class FeedStats:
    """Counters for monitoring and tests."""

    connects: int = 0
    frames: int = 0
    malformed: int = 0
    duplicates: int = 0
    stale_ticks: int = 0


class LiveFeed:
    """One websocket connection to ``url`` speaking ``protocol``.

    Args:
        url: full stream URL, e.g. ``wss://stream.bybit.com/v5/public/spot``.
        protocol: ``BybitProtocol()`` or ``BinanceProtocol()``.
        silence_timeout: seconds without any frame after which the link is dead.
        backoff_initial, backoff_max: reconnect delays (s): ``min(max, initial × 2^n)``, then
            scaled by a random factor in [0.5, 1] (jitter), n = failed attempts in a row.
        ping_interval: override the protocol's ping interval (seconds).
    """

    def __init__(self, url: str, protocol: BybitProtocol | BinanceProtocol, *,
                 silence_timeout: float = 60.0, backoff_initial: float = 0.5,
                 backoff_max: float = 30.0, ping_interval: float | None = None) -> None:
        self.url = url
        self.protocol = protocol
        self.silence_timeout = silence_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.ping_interval = ping_interval or protocol.ping_interval
        self.stats = FeedStats()
        self.connected = False
        self._subs: dict[str, list[Subscription]] = {}
        self._last_closed: dict[str, int] = {}
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task | None = None
        self._closing = asyncio.Event()
        self._req_id = 0

    # ---- subscriptions ---------------------------------------------------------------------
    async def subscribe(self, symbol: str, timeframe: str) -> Subscription:
        """Subscribe to the kline stream of ``symbol``/``timeframe``; starts the feed if idle.

        Raises:
            UnsupportedTimeframe: the exchange has no stream for ``timeframe``.
        """
        topic = self.protocol.topic(symbol, timeframe)
        sub = Subscription(topic, symbol, timeframe)
        first = topic not in self._subs
        self._subs.setdefault(topic, []).append(sub)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"feed {self.url}")
        elif first and self.connected:
            await self._send_requests(self.protocol.subscribe, [topic])
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub``; the topic is dropped when nobody else reads it."""
        subs = self._subs.get(sub.topic, [])
        if sub in subs:
            subs.remove(sub)
        if not subs and sub.topic in self._subs:
            del self._subs[sub.topic]
            self._last_closed.pop(sub.topic, None)
            if self.connected:
                with contextlib.suppress(ConnectionClosed, OSError):
                    await self._send_requests(self.protocol.unsubscribe, [sub.topic])

    @property
    def topics(self) -> list[str]:
        """Topics currently subscribed."""
        return list(self._subs)

    # ---- lifecycle ---------------------------------------------------------------------------
    async def close(self) -> None:
        """Close the connection and stop reconnecting."""
        self._closing.set()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), timeout=2.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        while not self._closing.is_set():
            detail = "closed"
            try:
                async with connect(
                    self.url, open_timeout=10, close_timeout=1, max_size=2**22,
                    ping_interval=self.ping_interval if self.protocol.protocol_pings else None,
                    ping_timeout=self.silence_timeout,
                ) as ws:
                    self._ws = ws
                    self.stats.connects += 1
                    await self._send_requests(self.protocol.subscribe, list(self._subs))
                    self.connected = True
                    failures = 0
                    self._notify(True, f"connected to {self.url}")
                    await self._read(ws)
            except FeedSilent:
                detail = f"no data for {self.silence_timeout:g} s"
            except (ConnectionClosed, OSError, InvalidHandshake, InvalidURI,
                    TimeoutError) as exc:
                detail = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
                if self.connected:
                    self.connected = False
                    if not self._closing.is_set():
                        log.warning("feed %s lost: %s", self.url, detail)
                        self._notify(False, detail)
            if self._closing.is_set():
                break
            delay = min(self.backoff_max, self.backoff_initial * 2**failures)
            delay *= random.uniform(0.5, 1.0)
            failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=delay)

    async def _read(self, ws: ClientConnection) -> None:
        pinger = None
        if self.protocol.ping() is not None:
            pinger = asyncio.create_task(self._ping(ws))
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(ws.recv(), timeout=self.silence_timeout)
                except TimeoutError:
                    raise FeedSilent() from None
                self.stats.frames += 1
                self._dispatch(frame)
        finally:
            if pinger is not None:
                pinger.cancel()

    async def _ping(self, ws: ClientConnection) -> None:
        message = self.protocol.ping()
        with contextlib.suppress(ConnectionClosed, OSError):
            while True:
                await asyncio.sleep(self.ping_interval)
                await ws.send(message)

    async def _send_requests(self, build, topics: list[str]) -> None:
        ws = self._ws
        if ws is None or not topics:
            return
        step = self.protocol.max_topics
        for i in range(0, len(topics), step):
            self._req_id += 1
            await ws.send(build(topics[i:i + step], self._req_id))

    # ---- delivery ------------------------------------------------------------------------------
    def _dispatch(self, frame: str | bytes) -> None:
        try:
            updates = self.protocol.parse(frame)
        except MalformedMessage as exc:
            self.stats.malformed += 1
            log.warning("feed %s: skipping malformed message: %s", self.url, exc)
            return
        for update in updates:
            subs = self._subs.get(update.topic)
            if not subs:
                continue
            last = self._last_closed.get(update.topic)
            ts = update.candle.timestamp
            if last is not None and ts <= last:
                if update.closed:
                    self.stats.duplicates += 1
                    log.info("feed %s: dropping %s candle %d (last closed %d)", self.url,
                             "duplicate" if ts == last else "out-of-order", ts, last)
                else:
                    self.stats.stale_ticks += 1
                continue
            if update.closed:
                self._last_closed[update.topic] = ts
            for sub in subs:
                sub.queue.put_nowait(update)

    def _notify(self, connected: bool, detail: str) -> None:
        status = FeedStatus(connected, detail, int(time.time() * 1000))
        for subs in self._subs.values():
            for sub in subs:
                sub.queue.put_nowait(status)


class FeedHub:
    """One ``LiveFeed`` per stream URL, shared by every run on that exchange."""

    def __init__(self, **feed_options: float) -> None:
        self._feeds: dict[str, LiveFeed] = {}
        self._options = feed_options

    def feed(self, url: str, protocol: BybitProtocol | BinanceProtocol) -> LiveFeed:
        """The feed for ``url``, created on first use."""
        if url not in self._feeds:
            self._feeds[url] = LiveFeed(url, protocol, **self._options)
        return self._feeds[url]

    @property
    def feeds(self) -> list[LiveFeed]:
        """Every feed created so far."""
        return list(self._feeds.values())

    async def close(self) -> None:
        """Close every feed."""
        await asyncio.gather(*(feed.close() for feed in self._feeds.values()))

