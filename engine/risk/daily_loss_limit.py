"""``daily_loss_limit_pct=X``: a loss of X % in a UTC day → no entries until the next day.

The day's reference is the equity at its first base-candle close (the first close whose time
falls on that UTC day). At every later close of the day, after the candle's exits and before
its entries, the loss ``(reference − equity) / reference × 100`` is compared with X: at X or
more, entries are refused until 00:00 UTC of the next day; the first close of that day sets a
new reference and lifts the lock. Open positions keep being managed (their unrealised PnL
counts in the equity). Needs a base timeframe shorter than a day.
"""

from __future__ import annotations

from typing import Any

from engine.risk.lock import DAY_MS, Guard, Lock, when


class DailyLossLimit(Guard):
    """See the module docstring.

    Args:
        candle_ms: base candle length, ms.
        pct: X, percent of the day's reference equity (0 < X ≤ 100).
    """

    name = "daily_loss_limit_pct"

    def __init__(self, candle_ms: int, pct: float) -> None:
        super().__init__(candle_ms)
        self.pct = pct
        self.day: int | None = None  # 00:00 UTC of the reference's day, ms
        self.reference = 0.0  # equity at the day's first close, quote

    def on_close(self, close_ts: int, equity: float, open_positions: int) -> bool:
        super().on_close(close_ts, equity, open_positions)
        day = close_ts - close_ts % DAY_MS
        if day != self.day:
            self.day, self.reference = day, equity
            return False
        if self.lock is None and self.reference > 0:
            loss = (self.reference - equity) / self.reference * 100.0
            if loss >= self.pct:
                until = day + DAY_MS
                self.lock = Lock(self.name, until,
                                 f"daily_loss_limit_pct: no entries until {when(until)} UTC "
                                 f"(equity {equity:,.2f} is {loss:.2f} % below the day's "
                                 f"first close, {self.reference:,.2f}; limit {self.pct:g} %)")
        return False

    def to_state(self) -> dict[str, Any]:
        return {**super().to_state(), "day": self.day, "reference": self.reference}

    def from_state(self, state: dict[str, Any]) -> None:
        super().from_state(state)
        day = state.get("day")
        self.day = None if day is None else int(day)
        self.reference = float(state.get("reference", 0.0))
