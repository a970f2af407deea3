"""Timeframe arithmetic on millisecond UTC timestamps.

Timeframes are ccxt strings: a positive integer followed by a unit, ``m`` (minute), ``h`` (hour),
``d`` (day) or ``w`` (week), e.g. ``1m 5m 15m 30m 1h 4h 1d 1w``, at most one year long
(``MAX_TIMEFRAME_MS``). Every time value is an ``int``
of milliseconds since the Unix epoch, UTC, and a candle is labelled by its **open** time.

Weekly candles follow the exchanges (Binance, Bybit): they open on Monday 00:00 UTC. Every other
bucket is aligned to the epoch, which for minutes, hours and days is what exchanges do.
"""

from __future__ import annotations

import re

from data.names import shown

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
YEAR_MS = 365 * DAY_MS

# 1970-01-01 was a Thursday; the first Monday 00:00 UTC after the epoch is 1970-01-05.
_WEEK_ORIGIN_MS = 4 * DAY_MS

_UNIT_MS = {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS, "w": WEEK_MS}
_PATTERN = re.compile(r"^([1-9][0-9]*)([mhdw])$")

#: Longest candle accepted: one year (525600m, 8760h, 365d or 52w); longer is refused.
MAX_TIMEFRAME_MS = YEAR_MS

#: The timeframes commands offer as choices, finest first.
STANDARD_TIMEFRAMES: tuple[str, ...] = ("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w")

#: The chain used to drill down into a candle when both stop-loss and take-profit lie inside it.
DRILL_DOWN_CHAIN: tuple[str, ...] = ("4h", "1h", "15m", "5m", "1m")


class TimeframeError(ValueError):
    """A timeframe string that cannot be parsed or combined."""


def timeframe_ms(timeframe: str) -> int:
    """Length of one candle of ``timeframe`` in milliseconds.

    Raises:
        TimeframeError: for anything but ``<n>m|h|d|w`` with ``n >= 1``, or a candle longer
            than one year; the message lists the standard timeframes.
    """
    text = timeframe.strip() if isinstance(timeframe, str) else ""
    match = _PATTERN.match(text) if len(text) <= 24 else None
    if match is None:
        raise TimeframeError(
            f"unknown timeframe {shown(timeframe, 16)}; use one of "
            f"{', '.join(STANDARD_TIMEFRAMES)}"
        )
    length = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if length > MAX_TIMEFRAME_MS:
        raise TimeframeError(
            f"timeframe {shown(timeframe, 16)} is longer than one year (at most 8760h, 365d "
            f"or 52w); use one of {', '.join(STANDARD_TIMEFRAMES)}"
        )
    return length


def normalize_timeframe(timeframe: str) -> str:
    """``" 1h "`` → ``"1h"``: the timeframe as it appears in file names and topics.

    Raises:
        TimeframeError: see ``timeframe_ms``.
    """
    timeframe_ms(timeframe)
    return timeframe.strip()


def bucket_origin(timeframe: str) -> int:
    """Offset (ms) of the bucket grid from the epoch: Monday 00:00 UTC for weeks, else 0."""
    return _WEEK_ORIGIN_MS if timeframe.strip().endswith("w") else 0


def bucket_start(ts: int, timeframe: str) -> int:
    """Open time (ms) of the ``timeframe`` candle that contains the instant ``ts`` (ms)."""
    step = timeframe_ms(timeframe)
    origin = bucket_origin(timeframe)
    return ts - (ts - origin) % step


def is_closed(open_ts: int, timeframe: str, now_ts: int) -> bool:
    """True when the candle that opened at ``open_ts`` has closed at time ``now_ts`` (ms).

    A candle covers ``[open_ts, open_ts + length)``; it is closed once ``now_ts`` has reached
    ``open_ts + length``. At the close of the 10:59 1m candle (``now`` = 11:00) the 10:00 1h
    candle is closed; at 10:59:59.999 it is not.
    """
    return now_ts >= open_ts + timeframe_ms(timeframe)


def is_multiple(higher: str, lower: str) -> bool:
    """True when a ``higher`` candle is made of a whole number of aligned ``lower`` candles."""
    high_ms, low_ms = timeframe_ms(higher), timeframe_ms(lower)
    if high_ms < low_ms or high_ms % low_ms:
        return False
    # Weekly buckets start on Monday; any divisor of a day is aligned to that too.
    return (bucket_origin(higher) - bucket_origin(lower)) % low_ms == 0


def sort_timeframes(timeframes: list[str]) -> list[str]:
    """``timeframes`` ordered from finest to coarsest (duplicates removed)."""
    return sorted(set(timeframes), key=timeframe_ms)


def lower_timeframes(timeframe: str) -> list[str]:
    """The drill-down chain below ``timeframe``, coarsest first, each dividing ``timeframe``.

    ``lower_timeframes("4h") == ["1h", "15m", "5m", "1m"]``; ``lower_timeframes("1m") == []``.
    """
    length = timeframe_ms(timeframe)
    return [
        tf
        for tf in DRILL_DOWN_CHAIN
        if timeframe_ms(tf) < length and is_multiple(timeframe, tf)
    ]


def periods_per_year(timeframe: str) -> float:
    """Number of ``timeframe`` candles in a 365-day year (crypto markets trade 24/7)."""
    return YEAR_MS / timeframe_ms(timeframe)
