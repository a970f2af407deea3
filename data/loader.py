"""Loading candles of any timeframe from the cache, resampling from finer data when needed.

DESIGN §2: a timeframe missing from the cache is built from finer cached candles (1m first).
Partial bins at the edges of the finer data (a download that starts or ends mid-hour) are
dropped; bins with holes inside (exchange outages) are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.cache import cache_path, cached_span, read_candles
from data.ohlcv import OHLCV
from data.resample import bin_starts, resample
from data.timeframes import DRILL_DOWN_CHAIN, is_multiple, timeframe_ms


class MissingDataError(LookupError):
    """No cached candles for the request; the message says what is missing and how to get it."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where a load came from: the cached timeframe used and its stored span (ms UTC)."""

    timeframe: str
    path: Path
    first: int
    last: int


def _trim_partial_edges(fine: OHLCV, fine_tf: str, target_tf: str) -> OHLCV:
    """Drop source candles of the first/last target bin when that bin is incomplete."""
    if len(fine) == 0 or fine_tf == target_tf:
        return fine
    per_bin = timeframe_ms(target_tf) // timeframe_ms(fine_tf)
    labels = bin_starts(fine.timestamp, target_tf)
    keep = np.ones(len(fine), dtype=bool)
    for edge in (labels[0], labels[-1]):
        members = labels == edge
        if members.sum() < per_bin:
            span_end = edge + timeframe_ms(target_tf)
            inside = fine.timestamp[members]
            # incomplete because the data starts/ends inside the bin, not because of a hole
            if inside[0] > edge or inside[-1] + timeframe_ms(fine_tf) < span_end:
                keep &= ~members
    return OHLCV(*(col[keep] for col in (fine.timestamp, fine.open, fine.high, fine.low,
                                         fine.close, fine.volume)))


class CandleLoader:
    """Reads candles for ``(exchange, symbol, timeframe)`` from a cache folder.

    Args:
        data_dir: the cache folder (``PAPERBOT_DATA_DIR`` / ``--data-dir``).
    """

    def __init__(self, data_dir: Path) -> None:
        from data.migrate import ensure_migrated

        self.data_dir = Path(data_dir)
        ensure_migrated(self.data_dir)  # perpetual candles out of spot-named files, once

    def sources(self, exchange: str, symbol: str, timeframe: str) -> list[Source]:
        """Cached files that can give ``timeframe``: itself, then finer divisors, finest last."""
        candidates = [timeframe] + [
            tf for tf in sorted(set(DRILL_DOWN_CHAIN) | {"30m", "1d"}, key=timeframe_ms,
                                reverse=True)
            if timeframe_ms(tf) < timeframe_ms(timeframe) and is_multiple(timeframe, tf)
        ]
        found = []
        for tf in candidates:
            path = cache_path(self.data_dir, exchange, symbol, tf)
            span = cached_span(path)
            if span is not None:
                found.append(Source(tf, path, span[0], span[1]))
        return found

    def pick_source(self, exchange: str, symbol: str, timeframe: str,
                    start: int | None, end: int | None) -> Source:
        """The cached source that covers ``[start, end)`` best.

        Without a range: the file of ``timeframe`` itself, else the finer file spanning the
        longest time. With a range: the one overlapping it most (ties: coarsest).

        Raises:
            MissingDataError: when nothing is cached for the symbol at or below the timeframe.
        """
        found = self.sources(exchange, symbol, timeframe)
        if not found:
            raise MissingDataError(
                f"no {symbol} {timeframe} candles for {exchange} in {self.data_dir} (nor finer "
                f"candles to build them from); fetch them with `paperbot data fetch --exchange "
                f"{exchange} --symbol {symbol} --timeframe {timeframe} --start YYYY-MM-DD` or "
                f"import a file with `paperbot data import FILE --exchange {exchange} --symbol "
                f"{symbol} --timeframe {timeframe}`"
            )
        if start is None and end is None:
            if found[0].timeframe == timeframe:
                return found[0]
            return max(found, key=lambda s: s.last - s.first)

        def overlap(src: Source) -> int:
            lo = max(src.first, start if start is not None else src.first)
            hi = min(src.last + timeframe_ms(src.timeframe), end if end is not None else 2**62)
            return max(0, hi - lo)

        return max(found, key=overlap)

    def load(self, exchange: str, symbol: str, timeframe: str, start: int | None = None,
             end: int | None = None) -> tuple[OHLCV, Source]:
        """Candles of ``timeframe`` with open time in ``[start, end)`` and their source.

        Raises:
            MissingDataError: see ``pick_source``.
        """
        src = self.pick_source(exchange, symbol, timeframe, start, end)
        step = timeframe_ms(timeframe)
        lo = None if start is None else start - start % step
        frame = read_candles(src.path, lo, end)
        candles = OHLCV.from_frame(frame)
        if src.timeframe != timeframe:
            candles = resample(_trim_partial_edges(candles, src.timeframe, timeframe),
                               src.timeframe, timeframe)
            if start is not None:
                candles = candles.between(start, end)
        return candles, src

    def lower_source(self, exchange: str, symbol: str, start: int, end: int):
        """A drill-down source over ``[start, end)``: loads each lower timeframe once, lazily.

        Returns ``source(timeframe, a, b) -> OHLCV | None`` for ``engine.drilldown``; None
        when that timeframe has no cached (or buildable) candles.
        """
        loaded: dict[str, OHLCV | None] = {}

        def source(timeframe: str, a: int, b: int) -> OHLCV | None:
            if timeframe not in loaded:
                try:
                    candles, _ = self.load(exchange, symbol, timeframe, start, end)
                    loaded[timeframe] = candles if len(candles) else None
                except MissingDataError:
                    loaded[timeframe] = None
            candles = loaded[timeframe]
            return None if candles is None else candles.between(a, b)

        return source
