"""``max_drawdown_pct=X`` (and ``max_drawdown_flatten``): a drawdown of X % from the peak
equity → no entries until equity is back within X % of the peak.

The peak is the highest equity seen at a base-candle close (after the candle's exits, before
its entries). At a close where ``(peak − equity) / peak × 100`` reaches X, entries are
refused; the lock lifts at the first close where the drawdown is below X again. With
``max_drawdown_flatten=true`` every open position is also closed at market at the close that
trips the guard (exit reason ``max_drawdown``). Equity without positions does not move, so once
flat the lock holds for the rest of the run.
"""

from __future__ import annotations

from typing import Any

from engine.risk.lock import Guard, Lock, when


class MaxDrawdown(Guard):
    """See the module docstring.

    Args:
        candle_ms: base candle length, ms.
        pct: X, percent of the peak equity (0 < X ≤ 100).
        flatten: close every position at market when the guard trips.
    """

    name = "max_drawdown_pct"

    def __init__(self, candle_ms: int, pct: float, flatten: bool = False) -> None:
        super().__init__(candle_ms)
        self.pct = pct
        self.flatten = flatten
        self.peak: float | None = None  # quote

    def on_close(self, close_ts: int, equity: float, open_positions: int) -> bool:
        if self.peak is None or equity > self.peak:
            self.peak = equity
        if self.peak <= 0:
            return False
        drawdown = (self.peak - equity) / self.peak * 100.0
        if self.lock is not None:
            if drawdown < self.pct:
                self.lock = None
            return False
        if drawdown < self.pct:
            return False
        closing = " (every position closed at market)" if self.flatten and open_positions \
            else ""
        self.lock = Lock(self.name, None,
                         f"max_drawdown_pct: no entries until equity is back within "
                         f"{self.pct:g} % of its peak {self.peak:,.2f} (at {when(close_ts)} "
                         f"UTC equity {equity:,.2f} was {drawdown:.2f} % below){closing}")
        return self.flatten and open_positions > 0

    def to_state(self) -> dict[str, Any]:
        return {**super().to_state(), "peak": self.peak}

    def from_state(self, state: dict[str, Any]) -> None:
        super().from_state(state)
        peak = state.get("peak")
        self.peak = None if peak is None else float(peak)
