"""Live kline feeds over websockets: one connection per exchange stream URL, shared by all runs.

A ``LiveFeed`` keeps one connection to one stream URL and carries every subscription on it.
It pings per the exchange's rules, treats a connection silent for ``silence_timeout`` seconds as
dead, reconnects with exponential backoff and jitter, and re-subscribes. Each subscriber gets its
own queue of ``KlineUpdate``s and ``FeedStatus`` changes; the consumer (a forward run) backfills
missed candles through REST when the feed comes back. Perpetuals' ticker topics (open interest,
funding: ``data.live.tickers``) ride on the same connection; they are not queued but folded
into one ``TickerBook`` per market, which the runs read at their closes.

Per topic, a closed candle older than or equal to the last one delivered (a duplicate or an
out-of-order message) is dropped, and so is a tick of a candle already closed. Updates that fail
the sanity checks of ``data.live.sanity`` are dropped (implausible candles) or held back (ticks
that do not fit earlier ticks or jump too far from the last close). Any error while parsing or
dispatching one frame is logged with an excerpt of the frame and skips that frame only.

The connection loop runs under a supervisor: should it ever end or raise while the feed is not
closing, the error is logged with its traceback, subscribers get ``FeedStatus(False)``, and the
loop is restarted after a backoff (subscribers get ``FeedStatus(True)`` once it is connected
again). None of these stop the feed; only ``close()`` does.
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

from data.live.messages import BinanceProtocol, BybitProtocol, KlineUpdate, MalformedMessage
from data.live.sanity import TickRange, candle_problem, seen_after, tick_problem
from data.live.tickers import TickerBook, TickerTopics, TickerUpdate

log = logging.getLogger(__name__)

#: Longest excerpt of a skipped frame written to the log (characters).
EXCERPT_CHARS = 200

#: Seconds ``close()`` waits for the feed task to end after cancelling it.
CLOSE_WAIT_S = 5.0


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
    malformed: int = 0  #: frames skipped: not parsable, or parsing/dispatching raised
    invalid: int = 0  #: updates dropped by the candle sanity check
    held_ticks: int = 0  #: ticks held back by the tick check
    duplicates: int = 0
    stale_ticks: int = 0
    restarts: int = 0  #: connection loop restarted by the supervisor
    tickers: int = 0  #: ticker messages folded into their books


@dataclass(slots=True)
class _TopicState:
    """What the feed remembers of one topic to judge the next update."""

    last_closed: int | None = None  #: open time (ms) of the last confirmed candle delivered
    last_close: float | None = None  #: its close (quote currency)
    ticks: TickRange | None = None  #: what accepted ticks of the open candle reported
    held_logged: int | None = None  #: open time of the candle whose held tick was last logged


def excerpt(frame: str | bytes, limit: int = EXCERPT_CHARS) -> str:
    """The start of ``frame`` for a log line (``repr``, cut to ``limit`` characters)."""
    head = frame[:limit]
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    more = f" … ({len(frame)} chars)" if len(frame) > limit else ""
    return f"{text!r}{more}"


class LiveFeed:
    """One websocket connection to ``url`` speaking ``protocol``.

    Args:
        url: full stream URL, e.g. ``wss://stream.bybit.com/v5/public/spot``.
        protocol: ``BybitProtocol()`` or ``BinanceProtocol()``.
        silence_timeout: seconds without any frame after which the link is dead.
        backoff_initial, backoff_max: reconnect delays (s): ``min(max, initial × 2^n)``, then
            scaled by a random factor in [0.5, 1] (jitter), n = failed attempts in a row. The
            supervisor waits the same way before restarting a connection loop that ended
            (n = restarts in a row without a successful connect).
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
        self._state: dict[str, _TopicState] = {}
        self._tickers = TickerTopics()  # ticker topic → its book and readers
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
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._supervise(), name=f"feed {self.url}")
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
            self._state.pop(sub.topic, None)
            if self.connected:
                with contextlib.suppress(ConnectionClosed, OSError):
                    await self._send_requests(self.protocol.unsubscribe, [sub.topic])

    async def subscribe_ticker(self, symbol: str) -> TickerBook:
        """Subscribe to the ticker stream of the perpetual ``symbol``; returns its book (shared
        by every subscriber of the symbol). Starts the feed if idle.

        Raises:
            ValueError: the exchange has no ticker stream here.
        """
        topic = self.protocol.ticker_topic(symbol)
        book, new = self._tickers.add(topic)
        if new and self._task is not None and not self._task.done() and self.connected:
            await self._send_requests(self.protocol.subscribe, [topic])
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._supervise(), name=f"feed {self.url}")
        return book

    async def unsubscribe_ticker(self, symbol: str) -> None:
        """Drop one subscriber of ``symbol``'s tickers; the topic goes with the last one."""
        topic = self.protocol.ticker_topic(symbol)
        if self._tickers.remove(topic) and self.connected:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._send_requests(self.protocol.unsubscribe, [topic])

    @property
    def topics(self) -> list[str]:
        """Topics currently subscribed (klines, then tickers)."""
        return list(self._subs) + self._tickers.topics

    # ---- lifecycle ---------------------------------------------------------------------------
    async def close(self) -> None:
        """Close the connection and stop reconnecting (within about 2 + ``CLOSE_WAIT_S`` s)."""
        self._closing.set()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), timeout=2.0)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            _, pending = await asyncio.wait({task}, timeout=CLOSE_WAIT_S)
            if pending:
                log.warning("feed %s: task still running %g s after close", self.url,
                            CLOSE_WAIT_S)
        self.connected = False

    def _backoff(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed attempts in a row (with jitter)."""
        delay = min(self.backoff_max, self.backoff_initial * 2**min(failures, 30))
        return delay * random.uniform(0.5, 1.0)

    async def _supervise(self) -> None:
        """Run the connection loop; restart it after a backoff whenever it ends unexpectedly."""
        failures = 0
        while not self._closing.is_set():
            connects = self.stats.connects
            try:
                await self._run()
                if self._closing.is_set():
                    return
                detail = "connection loop ended unexpectedly"
                log.error("feed %s: %s; restarting it", self.url, detail)
            except Exception as exc:  # CancelledError is no Exception: close() still works
                if self._closing.is_set():
                    return
                detail = f"feed error {type(exc).__name__}: {str(exc)[:200]}"
                log.exception("feed %s: connection loop failed; restarting it", self.url)
            self._ws = None
            self._mark_down(detail)
            self.stats.restarts += 1
            failures = 0 if self.stats.connects > connects else failures + 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=self._backoff(failures))

    async def _run(self) -> None:
        """The connection loop: connect, subscribe, read; reconnect with backoff until closed."""
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
                    await self._send_requests(self.protocol.subscribe, self.topics)
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
                if self._closing.is_set():
                    self.connected = False
            self._mark_down(detail)
            if self._closing.is_set():
                break
            delay = self._backoff(failures)
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
                self._on_frame(frame)
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
    def _on_frame(self, frame: str | bytes) -> None:
        """Parse and deliver one frame; whatever goes wrong skips this frame only."""
        try:
            for update in self.protocol.parse(frame):
                if isinstance(update, TickerUpdate):  # folded into its book, if still read
                    self.stats.tickers += self._tickers.apply(update)
                else:
                    self._deliver(update)
        except Exception as exc:  # any error of one frame; CancelledError is no Exception
            self.stats.malformed += 1
            log.warning("feed %s: skipping frame (%s: %s): %s", self.url, type(exc).__name__,
                        str(exc)[:EXCERPT_CHARS], excerpt(frame),
                        exc_info=not isinstance(exc, MalformedMessage))


    def _deliver(self, update: KlineUpdate) -> None:
        """Check ``update`` and queue it for the topic's subscribers, or drop/hold it."""
        subs = self._subs.get(update.topic)
        if not subs:
            return
        state = self._state.setdefault(update.topic, _TopicState())
        candle, kind = update.candle, "candle" if update.closed else "tick"
        problem = candle_problem(candle, update.timeframe)
        if problem is not None:
            self.stats.invalid += 1
            log.warning("feed %s: dropping invalid %s of %s: %s", self.url, kind, update.topic,
                        problem)
            return
        last, ts = state.last_closed, candle.timestamp
        if last is not None and ts <= last:
            if update.closed:
                self.stats.duplicates += 1
                log.info("feed %s: dropping %s candle %d (last closed %d)", self.url,
                         "duplicate" if ts == last else "out-of-order", ts, last)
            else:
                self.stats.stale_ticks += 1
            return
        if update.closed:
            state.last_closed, state.last_close, state.ticks = ts, candle.close, None
        else:
            problem = tick_problem(candle, state.ticks, state.last_close)
            if problem is not None:
                self.stats.held_ticks += 1
                first = state.held_logged != ts  # one warning per candle, not per tick
                state.held_logged = ts
                log.log(logging.WARNING if first else logging.DEBUG,
                        "feed %s: holding back tick of %s candle %d: %s", self.url,
                        update.topic, ts, problem)
                return
            state.ticks = seen_after(candle)
        for sub in subs:
            sub.queue.put_nowait(update)

    def _mark_down(self, detail: str) -> None:
        """Record that the connection is gone; tell subscribers once (not while closing)."""
        if not self.connected:
            return
        self.connected = False
        if not self._closing.is_set():
            log.warning("feed %s lost: %s", self.url, detail)
            self._notify(False, detail)

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

