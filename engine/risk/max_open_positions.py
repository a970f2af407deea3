"""``max_open_positions=N``: no entry while N positions are open.

An entry asked for while N or more positions are open is refused; the lock starts with the
first refusal (reaching the limit alone is no event) and lifts at the first close where fewer
than N positions are open, after that candle's exits.
"""

from __future__ import annotations

from engine.risk.lock import Guard, Lock


class MaxOpenPositions(Guard):
    """See the module docstring.

    Args:
        candle_ms: base candle length, ms.
        limit: N, positions (≥ 1).
    """

    name = "max_open_positions"

    def __init__(self, candle_ms: int, limit: int) -> None:
        super().__init__(candle_ms)
        self.limit = limit

    def on_close(self, close_ts: int, equity: float, open_positions: int) -> bool:
        if self.lock is not None and open_positions < self.limit:
            self.lock = None
        return False

    def blocking(self, close_ts: int, open_positions: int) -> Lock | None:
        if open_positions < self.limit:
            self.lock = None  # a position closed at this close (reported at the next one)
            return None
        if self.lock is None:
            self.lock = Lock(self.name, None,
                             f"max_open_positions: no entries until a position closes "
                             f"({open_positions} open, limit {self.limit})")
        return self.lock
