"""Perpetual-futures inputs per candle: open interest, funding rate and CVD (numpy only).

These are what a strategy reads as ``data[tf].open_interest``, ``data[tf].funding_rate`` and
``data[tf].cvd`` (``engine.market``). Each value is what was known at the candle's **close**
(open time + timeframe), never later; unknown is NaN, and nothing is carried forward past its
staleness limit:

* **open interest** (base units, e.g. BTC): the newest sample taken at or before the close
  (``sample time <= close``). It is NaN when that sample is more than
  ``OI_MAX_AGE_SAMPLES`` sampling periods old (5m samples: 10 minutes), i.e. after two
  missing samples in a row, and before the first sample.
* **funding rate** (a fraction per funding interval: ``0.0001`` = 0.01 % per 8 h): the rate of
  the newest funding settlement at or before the close ("last published"). It is NaN when that
  settlement is more than ``FUNDING_MAX_AGE_INTERVALS`` funding intervals old (8 h funding:
  16 h), and before the first one. The interval is the series' median spacing.
* **CVD** (cumulative volume delta, base units): the running sum, from the first loaded candle,
  of each candle's delta. With the exchange's taker buy volume ``tb`` (Binance klines carry it)
  the delta is ``tb − (volume − tb) = 2·tb − volume`` (source ``"taker"``); without it the
  approximation ``volume × sign(close − open)`` (source ``"approx"``). A series uses
  ``"taker"`` only when every one of its candles has a taker volume. Its level depends on where
  the loaded history starts: read its changes, not its level.

Higher (informative) timeframes take the value of the last base candle inside each bin, the one
whose close is the bin's close: the same visibility rule as candles.

This module is imported by forward runs: numpy only, no pandas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from data.resample import bin_starts
from data.timeframes import HOUR_MS, timeframe_ms

#: Open interest older than this many sampling periods at a candle's close is NaN.
OI_MAX_AGE_SAMPLES = 2
#: A funding rate older than this many funding intervals at a candle's close is NaN.
FUNDING_MAX_AGE_INTERVALS = 2
#: Funding interval assumed when a series has fewer than two settlements (Binance, Bybit: 8 h).
DEFAULT_FUNDING_INTERVAL_MS = 8 * HOUR_MS
#: The two kinds of stored history (``data.perp_store``, ``data.perp_fetch``).
OPEN_INTEREST = "open_interest"
FUNDING = "funding"
#: The per-candle columns a timeframe shows besides OHLCV, in this order.
PERP_COLUMNS: tuple[str, ...] = ("open_interest", "funding_rate", "cvd")


@dataclass(frozen=True, slots=True)
class PerpInputs:
    """Perpetual inputs aligned to base candles, each float64 of shape ``(n,)``, NaN = unknown.

    Attributes:
        open_interest: open interest known at each candle's close, base units.
        funding_rate: last published funding rate at each candle's close (fraction per
            funding interval).
        taker_buy_volume: base volume bought by takers during each candle.
    """

    open_interest: np.ndarray
    funding_rate: np.ndarray
    taker_buy_volume: np.ndarray

    @classmethod
    def unknown(cls, n: int) -> PerpInputs:
        """``n`` candles with nothing known (spot markets, or nothing stored)."""
        return cls(*(np.full(n, np.nan) for _ in range(3)))

    def __len__(self) -> int:
        return int(self.open_interest.shape[0])

    def take(self, index: slice) -> PerpInputs:
        """The rows selected by ``index`` (views)."""
        return PerpInputs(self.open_interest[index], self.funding_rate[index],
                          self.taker_buy_volume[index])

    @property
    def cvd_source(self) -> str:
        """``"taker"`` when every candle has a taker buy volume, else ``"approx"``."""
        tb = self.taker_buy_volume
        return "taker" if tb.size and bool(np.isfinite(tb).all()) else "approx"


@dataclass(frozen=True, slots=True)
class PerpPoint:
    """One base candle's inputs for ``MarketData.append`` (forward runs); NaN = unknown.

    ``open_interest`` (base units) and ``funding_rate`` as known at the candle's close;
    ``taker_buy_volume`` (base units) bought by takers during the candle.
    """

    open_interest: float = math.nan
    funding_rate: float = math.nan
    taker_buy_volume: float = math.nan


def values_at_closes(closes: np.ndarray, sample_ts: np.ndarray, values: np.ndarray,
                     max_age: int) -> np.ndarray:
    """For each close time, the newest value sampled at or before it; NaN when there is none
    or it is more than ``max_age`` ms old.

    Args:
        closes: close times, ms UTC, shape ``(n,)``.
        sample_ts: sample times, ms UTC, sorted, shape ``(m,)``.
        values: the samples, shape ``(m,)``.
        max_age: staleness limit in ms (a sample exactly ``max_age`` old is still used).
    """
    closes = np.asarray(closes, dtype=np.int64)
    sample_ts = np.asarray(sample_ts, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    idx = np.searchsorted(sample_ts, closes, side="right") - 1
    out = np.full(closes.shape, np.nan)
    ok = idx >= 0
    ok[ok] = closes[ok] - sample_ts[idx[ok]] <= max_age
    out[ok] = values[idx[ok]]
    return out


def align_open_interest(candle_ts: np.ndarray, timeframe: str, oi_ts: np.ndarray,
                        oi: np.ndarray, period_ms: int) -> np.ndarray:
    """Open interest known at each candle's close, shape ``(len(candle_ts),)``; see the module
    docstring (at or before the close, NaN past ``OI_MAX_AGE_SAMPLES × period_ms``).

    Args:
        candle_ts: candle open times, ms UTC, sorted.
        timeframe: the candles' timeframe.
        oi_ts: sample times, ms UTC, sorted.
        oi: open interest at those times, base units.
        period_ms: the samples' period (5m samples: 300_000).
    """
    closes = np.asarray(candle_ts, dtype=np.int64) + timeframe_ms(timeframe)
    return values_at_closes(closes, oi_ts, oi, OI_MAX_AGE_SAMPLES * int(period_ms))


def funding_interval(funding_ts: np.ndarray) -> int:
    """Median spacing of funding settlements in ms (``DEFAULT_FUNDING_INTERVAL_MS`` for fewer
    than two)."""
    ts = np.asarray(funding_ts, dtype=np.int64)
    if ts.size < 2:
        return DEFAULT_FUNDING_INTERVAL_MS
    return int(np.median(np.diff(ts)))


def align_funding(candle_ts: np.ndarray, timeframe: str, funding_ts: np.ndarray,
                  rates: np.ndarray, interval_ms: int | None = None) -> np.ndarray:
    """Funding rate last published at each candle's close, shape ``(len(candle_ts),)``; NaN
    past ``FUNDING_MAX_AGE_INTERVALS`` intervals (default interval: ``funding_interval``).

    Args:
        candle_ts: candle open times, ms UTC, sorted.
        timeframe: the candles' timeframe.
        funding_ts: settlement times, ms UTC, sorted.
        rates: the rate settled at each, a fraction (0.0001 = 0.01 %).
    """
    interval = funding_interval(funding_ts) if interval_ms is None else int(interval_ms)
    closes = np.asarray(candle_ts, dtype=np.int64) + timeframe_ms(timeframe)
    return values_at_closes(closes, funding_ts, rates, FUNDING_MAX_AGE_INTERVALS * interval)


def cvd_deltas(open_: np.ndarray, close: np.ndarray, volume: np.ndarray,
               taker_buy_volume: np.ndarray | None, source: str) -> np.ndarray:
    """Per-candle volume delta, base units, shape ``(n,)``: ``2·tb − volume`` for source
    ``"taker"`` (a candle without taker volume falls back to the approximation),
    ``volume × sign(close − open)`` for ``"approx"``."""
    open_, close, volume = (np.asarray(a, dtype=np.float64) for a in (open_, close, volume))
    delta = volume * np.sign(close - open_)
    if source == "taker" and taker_buy_volume is not None:
        tb = np.asarray(taker_buy_volume, dtype=np.float64)
        known = np.isfinite(tb)
        delta[known] = 2.0 * tb[known] - volume[known]
    return delta


def cvd_step(open_: float, close: float, volume: float, taker_buy_volume: float,
             source: str) -> float:
    """One candle's delta (scalar ``cvd_deltas``), for candles appended live."""
    if source == "taker" and taker_buy_volume == taker_buy_volume:  # not NaN
        return 2.0 * taker_buy_volume - volume
    return volume * ((close > open_) - (close < open_))


def base_columns(open_: np.ndarray, close: np.ndarray, volume: np.ndarray,
                 perp: PerpInputs) -> dict[str, np.ndarray]:
    """``PERP_COLUMNS`` of the base timeframe: open interest, funding rate and cumulative CVD.

    Raises:
        ValueError: when ``perp`` does not hold one value per candle.
    """
    if len(perp) != len(close):
        raise ValueError(f"perpetual inputs hold {len(perp)} values for {len(close)} candles")
    deltas = cvd_deltas(open_, close, volume, perp.taker_buy_volume, perp.cvd_source)
    return {"open_interest": np.asarray(perp.open_interest, dtype=np.float64),
            "funding_rate": np.asarray(perp.funding_rate, dtype=np.float64),
            "cvd": np.cumsum(deltas)}


def last_in_bins(base_ts: np.ndarray, bin_ts: np.ndarray, timeframe: str) -> np.ndarray:
    """Index of the last base candle inside each ``timeframe`` bin (bins labelled by open time,
    every bin holding at least one base candle), int64 shape ``(len(bin_ts),)``."""
    labels = bin_starts(np.asarray(base_ts, dtype=np.int64), timeframe)
    return np.searchsorted(labels, np.asarray(bin_ts, dtype=np.int64), side="right") - 1
