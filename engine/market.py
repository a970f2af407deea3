"""Market data as the strategy sees it: every timeframe of one symbol, closed candles only.

The base (execution) timeframe is the series the engine steps through. Higher (informative)
timeframes are aggregated from the base candles in both the backtest and forward runs, so both
see identical candles, and a higher candle becomes visible exactly when its period has closed:
at the close of the 10:59 1m candle the 10:00 1h candle appears, not before (DESIGN §3).

A leading bin that started before the first base candle is incomplete and is dropped; a bin
with missing base candles inside (an exchange outage) is kept as it is — nothing is invented.

Backtests build every column up front and move the clocks with ``advance(i)``; forward runs
call ``go_live()`` once and then grow the columns with ``append(candle)``, which aggregates
each closed base candle into the open higher bins by the same rule.

Perpetual inputs (``open_interest``, ``funding_rate``, ``cvd``; see ``data.perp``) are columns
of every timeframe like ``close``: NaN where unknown, a higher bin showing the value of its last
base candle. Backtests pass them as ``PerpInputs``; forward runs give each candle's values to
``append(candle, PerpPoint(...))``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from data.ohlcv import OHLCV, OHLCV_COLUMNS
from data.perp import PERP_COLUMNS, PerpInputs, PerpPoint, base_columns, cvd_step, last_in_bins
from data.resample import bin_starts, resample
from data.timeframes import TimeframeError, is_multiple, sort_timeframes, timeframe_ms
from engine.indicator_cache import IndicatorCache, indicator_key
from engine.market_view import MarketView, frame_of
from engine.series import Clock, Column, SeriesView, column_of, stored
from engine.types import Candle


class TimeframeData:
    """Closed candles of one timeframe: ``timestamp, open, high, low, close, volume`` views.

    ``timestamp`` is int ms UTC open time; prices quote; volume base units. ``latest`` is the
    newest closed candle; ``len(tf_data)`` the number of closed candles.

    Perpetual inputs, one value per candle as known at its close (NaN = unknown; see
    ``data.perp``): ``open_interest`` (base units), ``funding_rate`` (fraction per funding
    interval), ``cvd`` (cumulative volume delta, base units) and ``cvd_source`` (``"taker"``
    from the exchange's taker buy volume, ``"approx"`` from ``volume × sign(close − open)``).
    """

    __slots__ = ("clock", "close", "columns", "cvd", "cvd_source", "funding_rate", "high", "low",
                 "open", "open_interest", "timeframe", "timestamp", "volume")

    def __init__(self, timeframe: str, candles: OHLCV, visible: int = 0,
                 mirror: bool = True, key: Any = None,
                 perp: dict[str, np.ndarray] | None = None, cvd_source: str = "approx") -> None:
        self.timeframe = timeframe
        self.clock = Clock(visible)
        self.cvd_source = cvd_source
        self.columns = {name: Column(getattr(candles, name), mirror,
                                     None if key is None else (key, timeframe, name))
                        for name in OHLCV_COLUMNS}
        for name in PERP_COLUMNS:  # read a few times per candle: arrays only, no list mirror
            values = perp[name] if perp is not None else np.full(len(candles), np.nan)
            self.columns[name] = Column(np.asarray(values, dtype=np.float64), mirror=False,
                                        key=None if key is None else (key, timeframe, name))
        for name, column in self.columns.items():
            setattr(self, name, SeriesView(column, self.clock, timeframe, name))

    def __len__(self) -> int:
        return self.clock.n

    @property
    def latest(self) -> Candle:
        """The newest closed candle.

        Raises:
            IndexError: when no candle of this timeframe has closed yet.
        """
        i = self.clock.n - 1
        if i < 0:
            raise IndexError(f"no closed {self.timeframe} candle yet")
        cols = self.columns
        return Candle(*(cols[name].list[i] for name in OHLCV_COLUMNS))

    def stored(self) -> int:
        """Candles stored (visible or not)."""
        return self.columns["timestamp"].size


@dataclass(slots=True)
class Indicator:
    """A registered indicator: recomputed from its inputs when its timeframe grows."""

    timeframe: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    columns: list[Column]
    name: str = ""

    def compute(self, sizes: dict[str, int] | None = None) -> list[np.ndarray]:
        """Run ``fn`` on the full stored inputs; one float64 array per output.

        ``sizes`` (look-ahead check) truncates each series input to its first
        ``sizes[timeframe]`` values, as if the candles after them did not exist yet.
        """
        if sizes is None:
            args = [stored(a) if isinstance(a, SeriesView) else a for a in self.args]
        else:
            args = [stored(a)[: sizes[a.timeframe]].copy() if isinstance(a, SeriesView) else a
                    for a in self.args]
        result = self.fn(*args, **self.kwargs)
        outputs = list(result) if isinstance(result, tuple) else [result]
        expected = len(next(a for a in args if isinstance(a, np.ndarray)))
        arrays = []
        for out in outputs:
            arr = np.asarray(out, dtype=np.float64)
            if arr.shape != (expected,):
                name = getattr(self.fn, "__name__", "indicator")
                raise ValueError(
                    f"{name} returned shape {arr.shape}; an indicator must return one value per "
                    f"input candle, shape ({expected},)"
                )
            arrays.append(arr)
        return arrays


def drop_leading_partial(candles: OHLCV, bins: OHLCV) -> OHLCV:
    """``bins`` without a first bin that started before the first base candle."""
    if len(bins) and len(candles) and bins.timestamp[0] < candles.timestamp[0]:
        return bins.take(slice(1, None))
    return bins


def _closed_by(frame: TimeframeData, tf: str, close_time: Any) -> Any:
    """How many candles of ``frame`` (timeframe ``tf``) have closed by ``close_time`` (ms UTC;
    a number, or an array for one count each)."""
    return np.searchsorted(frame.columns["timestamp"].full + timeframe_ms(tf), close_time,
                           side="right")


class MarketData:
    """Every timeframe of one symbol. Strategies get it as ``data``.

    ``data.base`` is the execution timeframe; ``data["4h"]`` an informative one; ``data.now``
    the close time (ms UTC) of the current base candle.

    ``mirror`` keeps Python list mirrors of every column for fast scalar reads (backtests);
    forward runs pass False to keep only the arrays.

    Raises (constructor):
        TimeframeError: when an informative timeframe is not a whole multiple of the base.
    """

    def __init__(self, symbol: str, base_timeframe: str, base: OHLCV,
                 informative: list[str], visible: int = 0, mirror: bool = True,
                 cache: IndicatorCache | None = None, cache_key: Any = None,
                 perp: PerpInputs | None = None) -> None:
        self.symbol = symbol
        self.timeframe = base_timeframe
        self.mirror = mirror
        self.cache = cache if cache_key is not None else None
        perp = perp if perp is not None else PerpInputs.unknown(len(base))
        self.cvd_source = perp.cvd_source
        perp_base = base_columns(base.open, base.close, base.volume, perp)
        self.base = TimeframeData(base_timeframe, base, visible, mirror, cache_key, perp_base,
                                  self.cvd_source)
        self._frames: dict[str, TimeframeData] = {base_timeframe: self.base}
        self._base_ms = timeframe_ms(base_timeframe)
        self.indicators: list[Indicator] = []
        for tf in sort_timeframes([t for t in informative if t != base_timeframe]):
            if not is_multiple(tf, base_timeframe):
                raise TimeframeError(
                    f"timeframe {tf} cannot be built from base timeframe {base_timeframe}: "
                    f"pick a base timeframe that divides {tf}"
                )
            bins = drop_leading_partial(base, resample(base, base_timeframe, tf))
            last = last_in_bins(base.timestamp, bins.timestamp, tf)
            self._frames[tf] = TimeframeData(tf, bins, mirror=mirror, key=cache_key,
                                             perp={k: v[last] for k, v in perp_base.items()},
                                             cvd_source=self.cvd_source)
        self._visible_counts: list[tuple[Clock, Any]] = []
        self.view = MarketView(self)

    # ---- what strategies read --------------------------------------------------------------
    def __getitem__(self, timeframe: str) -> TimeframeData:
        return frame_of(self._frames, timeframe)

    @property
    def timeframes(self) -> list[str]:
        """Loaded timeframes, base first."""
        return list(self._frames)

    @property
    def now(self) -> int:
        """Close time (ms UTC) of the newest closed base candle."""
        n = self.base.clock.n
        return self.base.columns["timestamp"].list[n - 1] + self._base_ms if n else 0

    # ---- backtest: precomputed visibility ----------------------------------------------------
    def prepare_steps(self) -> None:
        """Precompute, for each base index, how many candles of each higher timeframe closed."""
        base_ts = self.base.columns["timestamp"].full
        base_close = base_ts + self._base_ms
        self._visible_counts = []
        for tf, frame in self._frames.items():
            if tf == self.timeframe:
                continue
            counts = _closed_by(frame, tf, base_close)
            self._visible_counts.append((frame.clock, memoryview(counts.astype(np.int64))))

    def visible_at(self, i: int) -> dict[str, int]:
        """How many candles of each timeframe have closed once base candle ``i`` closed."""
        base_close = int(self.base.columns["timestamp"].full[i]) + self._base_ms
        out = {self.timeframe: i + 1}
        for tf, frame in self._frames.items():
            if tf != self.timeframe:
                out[tf] = int(_closed_by(frame, tf, base_close))
        return out

    def advance(self, i: int) -> None:
        """Make base candle ``i`` (and what closed with it) the newest visible candle."""
        self.base.clock.n = i + 1
        for clock, counts in self._visible_counts:
            clock.n = counts[i]

    # ---- indicators ----------------------------------------------------------------------------
    def add_indicator(self, fn: Callable[..., Any], args: tuple[Any, ...],
                      kwargs: dict[str, Any], name: str) -> SeriesView | tuple[SeriesView, ...]:
        """Compute ``fn(*args, **kwargs)`` over full series and return view(s) of the result.

        Raises:
            ValueError: when no argument is a series, series of different timeframes are mixed,
                or the output length differs from the input's.
        """
        series = [a for a in args if isinstance(a, SeriesView)]
        if not series:
            raise ValueError(
                f"indicator {name}: pass at least one data series, e.g. data.base.close")
        timeframes = {s.timeframe for s in series}
        if len(timeframes) > 1:
            raise ValueError(f"indicator {name}: inputs mix timeframes {sorted(timeframes)}")
        tf = series[0].timeframe
        ind = Indicator(tf, fn, args, kwargs, [], name)
        key = None
        if self.cache is not None:
            key = indicator_key(fn, tuple(column_of(a).key if isinstance(a, SeriesView) else a
                                          for a in args), kwargs)
            if any(isinstance(a, SeriesView) and column_of(a).key is None for a in args):
                key = None
        arrays = self.cache.get(key) if key is not None else None
        if arrays is None:
            arrays = ind.compute()
            if key is not None:
                self.cache.put(key, arrays)
        ind.columns = [Column(arr, self.mirror, None if key is None else (key, k))
                       for k, arr in enumerate(arrays)]
        self.indicators.append(ind)
        clock = self._frames[tf].clock
        views = tuple(
            SeriesView(col, clock, tf, name if len(arrays) == 1 else f"{name}[{k}]")
            for k, col in enumerate(ind.columns)
        )
        return views[0] if len(views) == 1 else views

    def recompute_indicators(self, timeframes: set[str]) -> None:
        """Refresh indicators of ``timeframes`` after new candles were appended."""
        for ind in self.indicators:
            if ind.timeframe in timeframes:
                for col, arr in zip(ind.columns, ind.compute(), strict=True):
                    col.replace(arr)

    # ---- forward runs: growing columns -------------------------------------------------------
    def go_live(self) -> None:
        """Switch to appending: show every stored base candle, keep unclosed bins open."""
        self._visible_counts = []
        self._open_bins: dict[str, list[float] | None] = {}
        n_base = self.base.stored()
        self.base.clock.n = n_base
        last_close = (self.base.columns["timestamp"].list[-1] + self._base_ms) if n_base else 0
        for tf, frame in self._frames.items():
            if tf == self.timeframe:
                continue
            ts = frame.columns["timestamp"].full
            closed = int(_closed_by(frame, tf, last_close))
            open_bin: list[float] | None = None
            if closed < len(ts):
                open_bin = [float(frame.columns[c].list[closed]) for c in OHLCV_COLUMNS]
                open_bin.append(False)
                open_bin += [frame.columns[c].list[closed] for c in PERP_COLUMNS]
                for col in frame.columns.values():
                    col.replace(col.full[:closed].copy())
            elif n_base:
                bucket = int(bin_starts(np.array([last_close - self._base_ms]), tf)[0])
                if bucket + timeframe_ms(tf) > last_close:
                    # the bin in progress started before the first base candle: partial
                    open_bin = [bucket, 0.0, 0.0, 0.0, 0.0, 0.0, True, *[np.nan] * 3]
            frame.clock.n = closed
            self._open_bins[tf] = open_bin
        self._seen_any = n_base > 0

    def trim(self, keep: int) -> int:
        """Forget all but the newest ``keep`` base candles (forward runs); returns how many
        were dropped.

        Informative timeframes drop their bins that started before the first kept base
        candle (what a fresh ``MarketData`` over the kept candles would build, since a bin
        cut by the window start is partial); every indicator is recomputed over the kept
        candles. The bins still open are untouched.
        """
        n = self.base.stored()
        drop = n - keep
        if keep < 1 or drop <= 0:
            return 0
        cutoff = int(self.base.columns["timestamp"].full[drop])
        for tf, frame in self._frames.items():
            ts = frame.columns["timestamp"].full
            first = drop if tf == self.timeframe else int(np.searchsorted(ts, cutoff, "left"))
            if first:
                for col in frame.columns.values():
                    col.replace(col.full[first:].copy())
            frame.clock.n = frame.stored()
        self.recompute_indicators(set(self._frames))
        return drop

    def append(self, candle: Candle, perp: PerpPoint | None = None) -> set[str]:
        """Add the next closed base candle; returns the timeframes that gained a candle.

        ``perp`` holds the candle's perpetual inputs as known at its close (None: unknown);
        its CVD continues the stored one by this candle's delta (``data.perp.cvd_step``).
        The caller guarantees order (strictly increasing timestamps); higher bins that closed
        with this candle are appended before it becomes visible, as ``advance`` does.
        """
        grown = {self.timeframe}
        close_time = candle.timestamp + self._base_ms
        point = perp if perp is not None else PerpPoint()
        cvd_col = self.base.columns["cvd"]
        cvd = (cvd_col.list[-1] if cvd_col.size else 0.0) + cvd_step(
            candle.open, candle.close, candle.volume, point.taker_buy_volume, self.cvd_source)
        values = (point.open_interest, point.funding_rate, cvd)
        for tf, frame in self._frames.items():
            if tf == self.timeframe:
                continue
            step = timeframe_ms(tf)
            bucket = int(bin_starts(np.array([candle.timestamp]), tf)[0])
            current = self._open_bins.get(tf)
            if current is not None and int(current[0]) != bucket:
                if not current[6]:
                    grown.add(tf)
                _append_bin(frame, current)
                current = None
            if current is None:
                partial = not self._seen_any and bucket < candle.timestamp
                current = [bucket, candle.open, candle.high, candle.low, candle.close,
                           candle.volume, partial, *values]
            else:
                current[2] = max(current[2], candle.high)
                current[3] = min(current[3], candle.low)
                current[4] = candle.close
                current[5] += candle.volume
                current[7:10] = values
            if bucket + step <= close_time:
                if not current[6]:
                    _append_bin(frame, current)
                    grown.add(tf)
                current = None
            self._open_bins[tf] = current
        self._seen_any = True
        for name in OHLCV_COLUMNS:
            self.base.columns[name].append(getattr(candle, name))
        for name, value in zip(PERP_COLUMNS, values, strict=True):
            self.base.columns[name].append(value)
        self.base.clock.n = self.base.stored()
        self.recompute_indicators(grown)
        return grown


def _append_bin(frame: TimeframeData, values: list[float]) -> None:
    """Append a finished bin ``[ts, o, h, l, c, v, partial, oi, funding, cvd]`` unless it is
    partial."""
    if values[6]:
        return  # a leading partial bin is never shown
    for name, value in zip(OHLCV_COLUMNS, values[:6], strict=True):
        frame.columns[name].append(int(value) if name == "timestamp" else value)
    for name, value in zip(PERP_COLUMNS, values[7:10], strict=True):
        frame.columns[name].append(value)
    frame.clock.n = frame.stored()
