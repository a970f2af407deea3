"""``cooldown=N``: no entries for N base candles after a stop-loss.

A fill with exit reason ``stop_loss`` during the base candle closing at C locks entries until
C + N candles: the entries at C and at the N − 1 closes after it are refused, the first one
allowed is at C + N × candle. A second stop-loss while locked moves the end later, never
earlier. Only ``stop_loss`` exits count (not ``trailing_stop``, ``take_profit``, signals or
manual closes).
"""

from __future__ import annotations

from engine.risk.lock import Guard, Lock, candles, clock, when


class Cooldown(Guard):
    """See the module docstring.

    Args:
        candle_ms: base candle length, ms.
        count: N, base candles (≥ 1).
    """

    name = "cooldown"

    def __init__(self, candle_ms: int, count: int) -> None:
        super().__init__(candle_ms)
        self.count = count

    def on_exit(self, close_ts: int, reason: str) -> None:
        if reason != "stop_loss":
            return
        until = close_ts + self.count * self.candle_ms
        if self.lock is None or self.lock.until is None or self.lock.until < until:
            self.lock = Lock(self.name, until,
                             f"cooldown: no entries until {when(until)} UTC "
                             f"({candles(self.count)} after the stop-loss candle closed at "
                             f"{clock(close_ts, until)})")
