"""Loading the perpetual inputs of backtest candles from the cache (``data.perp``).

For candles already loaded by ``data.loader.CandleLoader`` this reads, when stored:

* the candles' ``taker_buy_volume`` column (summed per bin when the candles were resampled
  from a finer file; a bin with one candle lacking it lacks it);
* open interest of the symbol's perpetual, from the file whose sampling period is the coarsest
  one not longer than the timeframe (else the finest stored), aligned to candle closes;
* funding rates of the symbol's perpetual, aligned to candle closes.

Spot symbols get no open interest or funding (NaN): those belong to the perpetual, whose candles
live in their own files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from data.frames import TAKER_BUY_VOLUME
from data.loader import Source
from data.ohlcv import OHLCV
from data.perp import (
    OI_MAX_AGE_SAMPLES,
    PerpInputs,
    align_funding,
    align_open_interest,
)
from data.perp_fetch import pick_oi_period
from data.perp_store import (
    FUNDING,
    OPEN_INTEREST,
    funding_path,
    oi_path,
    read_series,
    stored_oi_periods,
)
from data.resample import bin_starts
from data.symbols import is_perpetual
from data.timeframes import timeframe_ms


@dataclass(frozen=True, slots=True)
class PerpLoad:
    """Perpetual inputs for a backtest and the files they came from (None: not stored), with
    the funding settlements read (times ms UTC, rates; empty when none is stored)."""

    inputs: PerpInputs
    open_interest: Path | None
    funding: Path | None
    settlements: tuple[np.ndarray, np.ndarray]


def taker_volume(source: Source, timeframe: str, candles: OHLCV) -> np.ndarray:
    """Taker buy volume of each of ``candles`` from their cache file, NaN where unknown."""
    out = np.full(len(candles), np.nan)
    if not len(candles) or TAKER_BUY_VOLUME not in pq.read_schema(source.path).names:
        return out
    lo, hi = int(candles.timestamp[0]), int(candles.timestamp[-1]) + timeframe_ms(timeframe)
    table = pq.read_table(source.path, columns=["timestamp", TAKER_BUY_VOLUME],
                          filters=[("timestamp", ">=", lo), ("timestamp", "<", hi)])
    ts = table.column(0).to_numpy().astype(np.int64)
    taker = table.column(1).to_numpy().astype(np.float64)
    if not len(ts):
        return out
    if source.timeframe != timeframe:
        labels = bin_starts(ts, timeframe)
        first = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
        ts, taker = labels[first], np.add.reduceat(taker, first)  # NaN in a bin stays NaN
    idx = np.searchsorted(ts, candles.timestamp)
    found = idx < len(ts)
    found[found] = ts[idx[found]] == candles.timestamp[found]
    out[found] = taker[idx[found]]
    return out


def load_perp_inputs(data_dir: Path, exchange: str, symbol: str, timeframe: str,
                     candles: OHLCV, source: Source) -> PerpLoad:
    """Open interest, funding and taker volume for ``candles`` (see the module docstring).

    Raises:
        SymbolError, TimeframeError: a malformed symbol or timeframe.
    """
    n = len(candles)
    taker = taker_volume(source, timeframe, candles)
    oi = np.full(n, np.nan)
    funding = np.full(n, np.nan)
    oi_file = funding_file = None
    settlements = np.empty(0, dtype=np.int64), np.empty(0)
    if is_perpetual(exchange, symbol) and n:
        step = timeframe_ms(timeframe)
        period = pick_oi_period(stored_oi_periods(data_dir, exchange, symbol), timeframe)
        if period is not None:
            oi_file = oi_path(data_dir, exchange, symbol, period)
            period_ms = timeframe_ms(period)
            lo = int(candles.timestamp[0]) + step - OI_MAX_AGE_SAMPLES * period_ms
            ts, values = read_series(oi_file, OPEN_INTEREST, lo,
                                     int(candles.timestamp[-1]) + step + 1)
            oi = align_open_interest(candles.timestamp, timeframe, ts, values, period_ms)
        path = funding_path(data_dir, exchange, symbol)
        if path.exists():
            funding_file = path
            settlements = read_series(path, FUNDING)
            funding = align_funding(candles.timestamp, timeframe, *settlements)
    return PerpLoad(PerpInputs(oi, funding, taker), oi_file, funding_file, settlements)
