"""Growing-array views: how a strategy sees candles and indicators without look-ahead.

A ``Column`` stores every value of one series (all candles loaded so far, or an indicator over
them). A ``SeriesView`` shows only the first ``clock.n`` values, where the ``Clock`` of its
timeframe counts the candles that have closed at the current step. Reading ``view[-1]`` is the
newest closed value; ``view.values`` is a numpy slice of the visible part (no copy).

Scalar reads come from a ``memoryview`` of the column's array (backtests: about as fast as a
Python list and no extra memory, since it shares the array's buffer, where a list mirror cost 32
bytes a value); forward runs, whose columns grow, read through an ``ArrayReader``.

Strategies see ``SeriesView``s only: every public attribute ends at the current candle. The
engine reaches the stored values (indicator computation, the look-ahead check) through
``stored(view)``, which is not part of the strategy API.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np


class Clock:
    """Number of visible (closed) candles of one timeframe at the current step."""

    __slots__ = ("n",)

    def __init__(self, n: int = 0) -> None:
        self.n = n


class ArrayReader:
    """List-like scalar access to a ``Column``'s array, for columns kept without a list mirror.

    Forward runs hold long histories and read one candle at a time: there the 32 bytes per
    value of a Python list mirror cost more than its speed is worth.
    """

    __slots__ = ("_col",)

    def __init__(self, column: Column) -> None:
        self._col = weakref.proxy(column)  # the column holds its reader: no reference cycle

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return self._col.array[: self._col.size][index].tolist()
        size = self._col.size
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError(index)
        return self._col.array.item(index)

    def __len__(self) -> int:
        return self._col.size


class Column:
    """Storage of one series: numpy array (with spare capacity) plus a scalar reader.

    ``size`` values are stored in ``array[:size]``. ``list`` reads single values: a
    ``memoryview`` of the stored values (``mirror``: fast, shares the array's memory; it is
    replaced when the column grows, so only fixed columns may be held on to, as backtests do)
    or an ``ArrayReader`` (always current, for forward runs). ``key`` identifies the values
    for the indicator cache (None: not cacheable).
    """

    __slots__ = ("__weakref__", "array", "key", "list", "mirror", "size")

    def __init__(self, values: np.ndarray, mirror: bool = True, key: Any = None) -> None:
        self.array = np.ascontiguousarray(values)
        self.size = int(self.array.shape[0])
        self.mirror = mirror
        self.key = key
        self.list: Any = _reader(self.array) if mirror else ArrayReader(self)

    @property
    def full(self) -> np.ndarray:
        """Every stored value, shape ``(size,)``."""
        return self.array[: self.size]

    def append(self, value: float | int) -> None:
        """Add one value at the end (amortised O(1): the array grows by 1/8 when full)."""
        if self.size == self.array.shape[0]:
            grown = np.empty(self.size + max(256, self.size // 8), dtype=self.array.dtype)
            grown[: self.size] = self.array[: self.size]
            self.array = grown
        self.array[self.size] = value
        self.size += 1
        if self.mirror:
            self.list = _reader(self.array[: self.size])

    def replace(self, values: np.ndarray) -> None:
        """Swap in recomputed values (an indicator after new candles)."""
        self.array = np.ascontiguousarray(values)
        self.size = int(self.array.shape[0])
        self.key = None
        if self.mirror:
            self.list = _reader(self.array)


def _reader(array: np.ndarray) -> Any:
    """Fast scalar reads of a fixed array: a ``memoryview`` (Python floats/ints), or a list for
    dtypes a buffer cannot carry."""
    try:
        return memoryview(array)
    except (TypeError, ValueError):
        return array.tolist()


class SeriesView:
    """Read-only view of the closed part of a series; newest value last.

    ``view[-1]`` newest value, ``view[-2]`` the one before; ``view[a:b]`` and ``view.values``
    numpy copies of (part of) the visible values; ``len(view)`` the number of visible values.
    Reading beyond the visible part raises ``IndexError``: the future is not there, and no
    public attribute leads to it (a numpy view would, through its ``.base``).
    """

    __slots__ = ("_clock", "_col", "name", "timeframe")

    def __init__(self, column: Column, clock: Clock, timeframe: str, name: str) -> None:
        self._col = column
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
            return self._col.list[key]
        if isinstance(key, slice):
            return self._col.array[: self._clock.n][key].copy()
        raise TypeError(f"{self.name} indices must be int or slice, not {type(key).__name__}")

    def __len__(self) -> int:
        return self._clock.n

    def __iter__(self) -> Iterator[Any]:
        return iter(_visible(self).tolist())

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        values = self.values
        return values.astype(dtype) if dtype is not None else values

    @property
    def values(self) -> np.ndarray:
        """A copy of the visible values, shape ``(len(self),)``.

        A copy, because a numpy view would lead (``.base``) to the stored values, future
        included; it costs O(len). In ``on_candle`` read what you need: ``view[-1]``,
        ``view[-20:]`` (which copies those 20 only).
        """
        return _visible(self)

    def __repr__(self) -> str:
        n = self._clock.n
        last = self._col.list[n - 1] if n else None
        return f"<SeriesView {self.name} {self.timeframe} n={n} last={last}>"


def _visible(view: SeriesView) -> np.ndarray:
    """A copy of the visible values of ``view`` (no route back to the stored array)."""
    return view._col.array[: view._clock.n].copy()


def stored(view: SeriesView) -> np.ndarray:
    """Every stored value behind ``view``, visible or not, shape ``(size,)``.

    Engine use only (indicator computation, the look-ahead check): strategies never get this.
    """
    return view._col.full


def column_of(view: SeriesView) -> Column:
    """The ``Column`` behind ``view`` (engine use only)."""
    return view._col
