"""Gap detection: spans where candles are missing from a series."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.timeframes import timeframe_ms


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing candles: open times ``start``, ``start + tf``, …, ``end - tf`` (ms UTC).

    ``end`` is the open time of the next candle that exists; ``missing`` the number of
    candles absent.
    """

    start: int
    end: int
    missing: int


def find_gaps(timestamps: np.ndarray, timeframe: str) -> list[Gap]:
    """Missing spans between consecutive open times of a sorted series.

    Args:
        timestamps: int64 ms UTC open times, strictly increasing, shape ``(n,)``.
        timeframe: the series' timeframe, e.g. ``"1m"``.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    if ts.size < 2:
        return []
    step = timeframe_ms(timeframe)
    diffs = np.diff(ts)
    holes = np.flatnonzero(diffs > step)
    return [
        Gap(start=int(ts[i]) + step, end=int(ts[i + 1]), missing=int(diffs[i] // step) - 1)
        for i in holes
    ]


def missing_spans(
    timestamps: np.ndarray, timeframe: str, start: int, end: int
) -> list[tuple[int, int]]:
    """Spans ``[a, b)`` of open times inside ``[start, end)`` with no candle in ``timestamps``.

    Used to fetch only what the cache lacks. ``start`` is floored to the timeframe grid.
    """
    step = timeframe_ms(timeframe)
    start -= start % step
    ts = np.asarray(timestamps, dtype=np.int64)
    ts = ts[(ts >= start) & (ts < end)]
    if ts.size == 0:
        return [(start, end)] if start < end else []
    spans: list[tuple[int, int]] = []
    if ts[0] > start:
        spans.append((start, int(ts[0])))
    spans.extend((gap.start, gap.end) for gap in find_gaps(ts, timeframe))
    if int(ts[-1]) + step < end:
        spans.append((int(ts[-1]) + step, end))
    return spans
