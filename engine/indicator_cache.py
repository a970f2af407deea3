"""Indicator values shared between backtests of the same candles (optimisation trials).

A study runs hundreds of backtests over the same candles; most parameters (stop-loss, sizes,
one of two moving averages) leave most indicators unchanged. ``IndicatorCache`` keeps the
outputs of ``fn(*inputs, **kwargs)`` under a key made of the function, the identity of its
input series (candle columns of a named slice of data, or other cached indicators) and its
other arguments, so a trial that asks for the same indicator again gets the stored arrays.

Keys hold the function object itself: a lambda defined inside ``on_init`` is a new object in
every trial and never matches (safe, merely uncached). Cached arrays are made read-only, so an
indicator that writes into its input fails loudly instead of corrupting other trials.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np


class IndicatorCache:
    """Least-recently-used store of indicator outputs, bounded by bytes.

    Args:
        max_bytes: total size of the arrays kept (default 64 MiB); the oldest go first.
    """

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[Hashable, list[np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> list[np.ndarray] | None:
        """The stored outputs for ``key``, or None."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found

    def put(self, key: Hashable, arrays: list[np.ndarray]) -> None:
        """Store ``arrays`` (made read-only) under ``key``, evicting the oldest entries."""
        size = sum(a.nbytes for a in arrays)
        if size > self.max_bytes:
            return
        for arr in arrays:
            arr.flags.writeable = False
        with self._lock:
            if key in self._items:
                return
            self._items[key] = arrays
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.bytes -= sum(a.nbytes for a in old)

    def __len__(self) -> int:
        return len(self._items)


def indicator_key(fn: Any, arg_keys: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
    """The cache key of ``fn`` over inputs identified by ``arg_keys`` (None: not cacheable).

    ``arg_keys`` holds, per positional argument, the input column's key or the argument
    itself; an unhashable argument (a list, an array) makes the indicator uncacheable.
    """
    key = (fn, arg_keys, tuple(sorted(kwargs.items())))
    try:
        hash(key)
    except TypeError:
        return None
    return key
