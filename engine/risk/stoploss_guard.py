"""``stoploss_guard=K/N/M``: K stop-losses within N base candles → no entries for M candles.

Each ``stop_loss`` exit is counted at the close C of the base candle it filled in. When the
stop-losses counted at closes in (C − N × candle, C] — the last N candles, this one included —
number K or more, entries are locked until C + M × candle (refused at C and the M − 1 closes
after it). A further stop-loss while locked can move the end later, never earlier.
"""

from __future__ import annotations

from typing import Any

from engine.risk.lock import Guard, Lock, candles, clock, when


class StoplossGuard(Guard):
    """See the module docstring.

    Args:
        candle_ms: base candle length, ms.
        limit: K, stop-losses (≥ 1).
        window: N, base candles looked back (≥ 1).
        duration: M, base candles locked (≥ 1).
    """

    name = "stoploss_guard"

    def __init__(self, candle_ms: int, limit: int, window: int, duration: int) -> None:
        super().__init__(candle_ms)
        self.limit = limit
        self.window = window
        self.duration = duration
        self.stops: list[int] = []  # close times (ms UTC) of the stop-losses in the window

    def on_exit(self, close_ts: int, reason: str) -> None:
        if reason != "stop_loss":
            return
        start = close_ts - self.window * self.candle_ms
        self.stops = [ts for ts in self.stops if ts > start] + [close_ts]
        if len(self.stops) < self.limit:
            return
        until = close_ts + self.duration * self.candle_ms
        if self.lock is None or self.lock.until is None or self.lock.until < until:
            self.lock = Lock(self.name, until,
                             f"stoploss_guard: no entries until {when(until)} UTC "
                             f"({len(self.stops)} stop-losses within {candles(self.window)}, "
                             f"the last in the candle closed at {clock(close_ts, until)}; "
                             f"locked for {candles(self.duration)})")

    def to_state(self) -> dict[str, Any]:
        return {**super().to_state(), "stops": list(self.stops)}

    def from_state(self, state: dict[str, Any]) -> None:
        super().from_state(state)
        self.stops = [int(ts) for ts in state.get("stops", [])]
