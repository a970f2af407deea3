"""The live ticker stream of a perpetual: open interest, funding rate and next funding time.

Bybit v5 public ``tickers.{SYMBOL}`` on ``/v5/public/linear`` (https://bybit-exchange.github.io/
docs/v5/websocket/public/ticker): a ``snapshot`` when subscribed, then ``delta`` messages every
100 ms carrying only the fields that changed ("if a response param is not found in the
message, then its value has not changed")::

    {"topic": "tickers.BTCUSDT", "type": "snapshot", "cs": 24987956059, "ts": 1673272861686,
     "data": {"symbol": "BTCUSDT", "openInterest": "68744.761", "fundingRate": "-0.000212",
              "nextFundingTime": "1673280000000", "markPrice": "17217.33", …}}

Read here: ``openInterest`` (base units), ``fundingRate`` (the rate of the coming settlement, a
fraction) and ``nextFundingTime`` (ms UTC). A ``TickerBook`` folds the messages into the state
of one market and keeps the states of the last ``KEEP_STATES`` messages, so that a run closing a
candle a moment after its close still reads the state **at or before** the close. A settlement
is recognised when ``nextFundingTime`` moves on: the rate announced for the old time is the rate
settled then (and at a close at or after ``nextFundingTime`` before the stream moved on, the
announced rate is taken as settled). numpy-free; parsing checks types and ranges only.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

#: Messages whose state a book keeps (100 ms deltas: about a minute).
KEEP_STATES = 600
#: Settlements a book remembers (8-hourly: a month).
KEEP_SETTLEMENTS = 96
#: A funding rate beyond this (a fraction) is not a funding rate (exchanges cap at a few %).
MAX_FUNDING_RATE = 0.5


class TickerError(ValueError):
    """A ticker message with a field of the wrong type or out of range."""


@dataclass(frozen=True, slots=True)
class TickerUpdate:
    """One ticker message: ``kind`` ``"snapshot"`` or ``"delta"``; ``ts`` the exchange's time
    (ms UTC); a field is None when the message does not carry it (unchanged)."""

    topic: str
    market: str
    kind: str
    ts: int
    open_interest: float | None
    funding_rate: float | None
    next_funding_time: int | None


@dataclass(frozen=True, slots=True)
class TickerState:
    """The market as of ``ts`` (ms UTC): open interest (base units), the funding rate of the
    settlement at ``next_funding_time`` (ms UTC; 0 unknown); ``nan`` = unknown."""

    ts: int
    open_interest: float
    funding_rate: float
    next_funding_time: int


def _number(value: Any, what: str, low: float, high: float) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TickerError(f"bad {what} {str(value)[:40]!r}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise TickerError(f"bad {what} {str(value)[:40]!r}") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise TickerError(f"{what} {number:g} out of range")
    return number


def _time(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    raise TickerError(f"bad {what} {str(value)[:40]!r}")


def parse_bybit_ticker(msg: dict[str, Any], topic: str) -> TickerUpdate:
    """A ``TickerUpdate`` from a Bybit ``tickers.*`` push (already JSON-decoded).

    Raises:
        TickerError: no ``ts``, a ``type`` other than snapshot/delta, ``data`` not an object,
            or a field that is not a number in range.
    """
    kind = msg.get("type")
    if kind not in ("snapshot", "delta"):
        raise TickerError(f"bad ticker type {str(kind)[:20]!r} on {topic}")
    data = msg.get("data")
    if not isinstance(data, dict):
        raise TickerError(f"ticker push without a data object on {topic}")
    ts = _time(msg.get("ts"), "ticker ts")
    if ts is None:
        raise TickerError(f"ticker push without ts on {topic}")
    return TickerUpdate(topic, topic.split(".", 1)[1], kind, ts,
                        _number(data.get("openInterest"), "openInterest", 0.0, 1e15),
                        _number(data.get("fundingRate"), "fundingRate", -MAX_FUNDING_RATE,
                                MAX_FUNDING_RATE),
                        _time(data.get("nextFundingTime"), "nextFundingTime"))


class TickerBook:
    """The ticker state of one market over its last ``KEEP_STATES`` messages."""

    def __init__(self, keep: int = KEEP_STATES) -> None:
        self.states: deque[TickerState] = deque(maxlen=keep)
        #: settlement time (ms UTC) → rate, learnt when ``nextFundingTime`` moved on
        self.settled: dict[int, float] = {}
        self.messages = 0
        self.stale = 0  #: messages older than the state (dropped)

    @property
    def latest(self) -> TickerState | None:
        """The newest state, or None before the first message."""
        return self.states[-1] if self.states else None

    def apply(self, update: TickerUpdate) -> None:
        """Fold one message in (a snapshot replaces the state, a delta updates its fields)."""
        self.messages += 1
        last = self.latest
        if last is not None and update.ts < last.ts:
            self.stale += 1
            return
        if update.kind == "snapshot" or last is None:
            base = TickerState(update.ts, math.nan, math.nan, 0)
        else:
            base = last
        state = TickerState(
            update.ts,
            base.open_interest if update.open_interest is None else update.open_interest,
            base.funding_rate if update.funding_rate is None else update.funding_rate,
            base.next_funding_time if update.next_funding_time is None
            else update.next_funding_time)
        if (update.kind == "delta" and last is not None and last.next_funding_time
                and state.next_funding_time > last.next_funding_time
                and last.funding_rate == last.funding_rate):
            self.settled[last.next_funding_time] = last.funding_rate
            while len(self.settled) > KEEP_SETTLEMENTS:
                del self.settled[min(self.settled)]
        self.states.append(state)

    def at(self, ts: int) -> TickerState | None:
        """The newest state of a message stamped at or before ``ts`` (ms UTC); None when the
        book holds none (no message yet, or only later ones)."""
        for state in reversed(self.states):
            if state.ts <= ts:
                return state
        return None

    def settlements_until(self, ts: int) -> dict[int, float]:
        """Settlements known to have happened by ``ts`` (ms UTC): ``{time: rate}``."""
        out = {t: rate for t, rate in self.settled.items() if t <= ts}
        state = self.at(ts)
        if state is not None and 0 < state.next_funding_time <= ts \
                and state.funding_rate == state.funding_rate:
            out.setdefault(state.next_funding_time, state.funding_rate)
        return out


class TickerTopics:
    """The ticker topics of one feed: a shared book per topic and how many readers it has."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[TickerBook, int]] = {}

    @property
    def topics(self) -> list[str]:
        """Topics with at least one reader."""
        return list(self._entries)

    def add(self, topic: str) -> tuple[TickerBook, bool]:
        """One more reader of ``topic``: (its book, True when the topic is new here)."""
        book, readers = self._entries.get(topic, (None, 0))
        new = book is None
        if book is None:
            book = TickerBook()
        self._entries[topic] = (book, readers + 1)
        return book, new

    def remove(self, topic: str) -> bool:
        """One reader fewer; True when that was the last (the topic is dropped)."""
        if topic not in self._entries:
            return False
        book, readers = self._entries[topic]
        if readers > 1:
            self._entries[topic] = (book, readers - 1)
            return False
        del self._entries[topic]
        return True

    def apply(self, update: TickerUpdate) -> bool:
        """Fold ``update`` into its topic's book; False for a topic nobody reads any more."""
        entry = self._entries.get(update.topic)
        if entry is None:
            return False
        entry[0].apply(update)
        return True
