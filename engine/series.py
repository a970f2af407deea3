"""Growing-array views: how a strategy sees candles and indicators without look-ahead.

A ``Column`` stores every value of one series (all candles loaded so far, or an indicator over
them). A ``SeriesView`` shows only the first ``clock.n`` values, where the ``Clock`` of its
timeframe counts the candles that have closed at the current step. Reading ``view[-1]`` is the
newest closed value; ``view.values`` is a numpy slice of the visible part (no copy).

Scalar reads come from a Python list mirror of the column, which is several times faster than
indexing numpy for single elements in the per-candle loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


class Clock:
    """Number of visible (closed) candles of one timeframe at the current step."""

    __slots__ = ("n",)

    def __init__(self, n: int = 0) -> None:
        self.n = n


class Column:
    """Storage of one series: numpy array (with spare capacity) plus a list mirror.

    ``size`` values are stored; ``array[:size]`` and ``list`` hold the same numbers.
    """

    __slots__ = ("array", "list", "size")

    def __init__(self, values: np.ndarray) -> None:
        self.array = np.ascontiguousarray(values)
        self.list: list[Any] = self.array.tolist()
        self.size = len(self.list)

    @property
    def full(self) -> np.ndarray:
        """Every stored value, shape ``(size,)``."""
        return self.array[: self.size]

    def append(self, value: float | int) -> None:
        """Add one value at the end (amortised O(1): the array doubles when full)."""
        if self.size == self.array.shape[0]:
            grown = np.empty(max(16, self.size * 2), dtype=self.array.dtype)
            grown[: self.size] = self.array[: self.size]
            self.array = grown
        self.array[self.size] = value
        self.list.append(value)
        self.size += 1

    def replace(self, values: np.ndarray) -> None:
        """Swap in recomputed values (an indicator after new candles); the list keeps identity."""
        self.array = np.ascontiguousarray(values)
        self.list[:] = self.array.tolist()
        self.size = len(self.list)


class SeriesView:
    """Read-only view of the closed part of a series; newest value last.

    ``view[-1]`` newest value, ``view[-2]`` the one before; ``view[a:b]`` and ``view.values``
    numpy slices of the visible part; ``len(view)`` the number of visible values. Reading
    beyond the visible part raises ``IndexError``: the future is not there.
    """

    __slots__ = ("_clock", "_col", "_list", "name", "timeframe")

    def __init__(self, column: Column, clock: Clock, timeframe: str, name: str) -> None:
        self._col = column
        self._list = column.list
        self._clock = clock
        self.timeframe = timeframe
        self.name = name

    def __getitem__(self, key: int | slice) -> Any:
        if key.__class__ is int:
            n = self._clock.n
            if key < 0:
                key += n
                if key < 0:
                    raise IndexError(f"{self.name}: only {n} {self.timeframe} values visible")
            elif key >= n:
                raise IndexError(f"{self.name}: only {n} {self.timeframe} values visible")
            return self._list[key]
        if isinstance(key, slice):
            return self._col.array[: self._clock.n][key]
        raise TypeError(f"{self.name} indices must be int or slice, not {type(key).__name__}")

    def __len__(self) -> int:
        return self._clock.n

    def __iter__(self) -> Iterator[Any]:
        return iter(self._list[: self._clock.n])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        values = self.values
        return values.astype(dtype) if dtype is not None else values

    @property
    def values(self) -> np.ndarray:
        """Visible values as a numpy array view, shape ``(len(self),)``."""
        return self._col.array[: self._clock.n]

    @property
    def full(self) -> np.ndarray:
        """Every stored value, visible or not. Engine use only (indicator computation)."""
        return self._col.full

    def __repr__(self) -> str:
        n = self._clock.n
        last = self._list[n - 1] if n else None
        return f"<SeriesView {self.name} {self.timeframe} n={n} last={last}>"
