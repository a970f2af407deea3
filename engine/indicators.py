"""Vectorised, causal indicators for strategies.

Each function takes numpy arrays of shape ``(n,)`` and returns float64 arrays of shape ``(n,)``;
value ``i`` depends on inputs ``0..i`` only, so computing over a longer series never changes
earlier values. Values that are not defined yet (not enough history) are ``nan``.

Breadth comes from TA-Lib (``import talib``): any of its functions can be registered directly,
``self.indicator(talib.MACD, data.base.close, fastperiod=12, …)`` (docs/strategies.md). The
functions here are the ones paperbot keeps for a reason (tests/test_talib.py checks them
against TA-Lib):

* ``sma`` sums each window on its own, so a value never depends on where the series starts
  (a forward run recomputes over a rolling window: its values stay bit-identical to the
  backtest's); TA-Lib's running sum differs by ~1e-12.
* ``ema``, ``rsi``, ``atr`` seed with the first value (pandas' ``ewm(adjust=False)``), TA-Lib
  with the mean of the first ``period`` values: equal once the seed has decayed (after about
  ten periods), different before. Every published result uses this seeding.
* ``rolling_max``/``rolling_min`` give TA-Lib's ``MAX``/``MIN`` values in pure numpy, O(n)
  for any period (van Herk / Gil-Werman): importing TA-Lib imports pandas and pyarrow
  (~95 MB), which the forward process must not carry.
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _check_period(period: int) -> int:
    period = int(period)
    if period < 1:
        raise ValueError(f"period must be at least 1, got {period}")
    return period


def ewm_mean(values: np.ndarray, alpha: float, min_periods: int = 1) -> np.ndarray:
    """Exponentially weighted mean ``y_i = (1 − alpha) y_{i−1} + alpha x_i``.

    Seeded with the first non-``nan`` value (as pandas' ``ewm(alpha=…, adjust=False)``);
    a ``nan`` later in the input keeps the previous value. The first ``min_periods − 1``
    values after the seed are ``nan``. A C-level ``accumulate`` loop: about 50 ns a value, and
    no pandas import in long-running processes.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    x = np.asarray(values, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(x))
    if valid.size == 0:
        return out
    first = int(valid[0])
    keep = 1.0 - alpha

    def step(prev: float, value: float) -> float:
        return prev if value != value else keep * prev + alpha * value

    out[first:] = list(accumulate(x[first:].tolist(), step))
    out[first:first + max(0, min_periods - 1)] = np.nan
    return out


def sma(values: np.ndarray, period: int) -> np.ndarray:
    """Simple moving average of the last ``period`` values.

    Each window is summed on its own (not from a running cumulative sum), so a value does not
    depend on where the series starts.
    """
    period = _check_period(period)
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    if values.size >= period:
        out[period - 1:] = sliding_window_view(values, period).mean(axis=1)
    return out


def ema(values: np.ndarray, period: int) -> np.ndarray:
    """Exponential moving average, alpha = 2 / (period + 1), seeded with the first value.

    The first ``period - 1`` values are ``nan`` (not enough history to be meaningful).
    """
    period = _check_period(period)
    return ewm_mean(values, 2.0 / (period + 1), min_periods=period)


def rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    """Relative Strength Index with Wilder's smoothing (alpha = 1 / period), 0–100.

    Source: J. Welles Wilder, *New Concepts in Technical Trading Systems* (1978).
    """
    period = _check_period(period)
    close = np.asarray(close, dtype=np.float64)
    change = np.diff(close, prepend=np.nan)
    gain = np.where(change > 0, change, 0.0)
    loss = np.where(change < 0, -change, 0.0)
    gain[:1] = loss[:1] = np.nan
    avg_gain = ewm_mean(gain, 1.0 / period, min_periods=period)
    avg_loss = ewm_mean(loss, 1.0 / period, min_periods=period)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    out[(avg_loss == 0) & (avg_gain > 0)] = 100.0
    out[(avg_loss == 0) & (avg_gain == 0)] = 50.0
    return out


def rolling_max(values: np.ndarray, period: int, shift: int = 0) -> np.ndarray:
    """Highest of the ``period`` values ending ``shift`` values before each index."""
    return _rolling(values, period, shift, np.max)


def rolling_min(values: np.ndarray, period: int, shift: int = 0) -> np.ndarray:
    """Lowest of the ``period`` values ending ``shift`` values before each index."""
    return _rolling(values, period, shift, np.min)


def _rolling(values: np.ndarray, period: int, shift: int, reduce: np.ufunc) -> np.ndarray:
    period = _check_period(period)
    values = np.ascontiguousarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    if values.size >= period:
        if period > 8 and not np.isnan(values).any():  # short windows: the view is faster
            out[period - 1:] = _block_extreme(values, period, np.maximum if reduce is np.max
                                              else np.minimum)
        else:
            out[period - 1:] = reduce(sliding_window_view(values, period), axis=1)
    if shift:
        out = np.concatenate((np.full(shift, np.nan), out[:-shift]))
    return out


def _block_extreme(values: np.ndarray, period: int, op: np.ufunc) -> np.ndarray:
    """``op`` (``np.maximum``/``np.minimum``) over every window of ``period`` values, shape
    ``(n - period + 1,)``, in O(n) whatever the period (van Herk 1992; Gil & Werman 1993):
    cut the series into blocks of ``period``; a window spans the tail of one block and the
    head of the next, so its extreme is ``op`` of a suffix scan and a prefix scan. Exact (no
    arithmetic), no NaN in ``values``. Pure numpy: TA-Lib's MAX/MIN would import pandas into
    the live process."""
    n = values.size
    blocks = -(-n // period)
    pad = blocks * period - n
    fill = -np.inf if op is np.maximum else np.inf
    # one column per block: each scan step runs over every block at once
    grid = np.ascontiguousarray(np.concatenate((values, np.full(pad, fill)))
                                .reshape(blocks, period).T)
    prefix = op.accumulate(grid, axis=0).T.ravel()[:n]
    suffix = op.accumulate(grid[::-1], axis=0)[::-1].T.ravel()[:n]
    return op(suffix[: n - period + 1], prefix[period - 1:])


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Average True Range with Wilder's smoothing, quote currency (Wilder 1978)."""
    period = _check_period(period)
    high, low, close = (np.asarray(a, dtype=np.float64) for a in (high, low, close))
    prev_close = np.concatenate(([np.nan], close[:-1]))
    true_range = np.fmax(high - low, np.fmax(np.abs(high - prev_close), np.abs(low - prev_close)))
    return ewm_mean(true_range, 1.0 / period, min_periods=period)


#: Two values closer than this fraction of their size are a tie, not a cross: averages that
#: are equal in exact arithmetic differ by float noise (~1e-16 relative) depending on how they
#: were summed, and a "cross" of that size is an artefact, never a signal.
TIE_TOLERANCE = 1e-10


def crossover(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """+1 where ``a`` crosses above ``b``, −1 where it crosses below, 0 elsewhere.

    A cross above at ``i`` means ``a[i] > b[i]`` and ``a[i-1] <= b[i-1]`` (and the mirror for
    below), where values within ``TIE_TOLERANCE`` of each other (relative to the larger) count
    as equal: an exact tie is not a cross. Comparisons with ``nan`` never cross.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.zeros(a.shape)
    if a.size < 2:
        return out
    with np.errstate(invalid="ignore"):
        diff = a - b
        tol = TIE_TOLERANCE * np.maximum(np.abs(a), np.abs(b))
        above, below = diff > tol, diff < -tol
        at_or_below, at_or_above = diff <= tol, diff >= -tol
    out[1:][above[1:] & at_or_below[:-1]] = 1.0
    out[1:][below[1:] & at_or_above[:-1]] = -1.0
    return out
