"""Manual commands of the broker (``engine.core.Core``): market exits of a position or of all
of them at a given price, and moving a position's levels.

Forward runs call them for ``/close``, ``/panic``, ``/position`` and the break-even button;
backtests for the ``end_of_data`` closes and the drawdown guard's flatten. A mixin of ``Core``:
``self`` is the core (its portfolio, ``_market_close`` and ``emit``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.events import PositionUpdated
from engine.signals import check_levels
from engine.types import Position, Trade

if TYPE_CHECKING:
    from engine.portfolio import Portfolio


class ManualCommands:
    """``close_position``, ``close_all`` and ``update_levels`` of ``Core``."""

    portfolio: Portfolio
    run_id: str
    emit: Callable[[object], None] | None

    def _market_close(self, pos: Position, reference: float, ts: int, reason: str,
                      size: float | None = None) -> Trade | None:
        raise NotImplementedError  # Core's

    def close_position(self, position_id: int, price: float, ts: int,
                       reason: str = "manual") -> Trade | None:
        """Market exit of all of one position at ``price`` (slippage and taker fee applied)."""
        pos = self.portfolio.get(position_id)
        if pos is None:
            return None
        return self._market_close(pos, price, ts, reason)

    def close_all(self, price: float, ts: int, reason: str) -> list[Trade]:
        """Market exit of every open position (e.g. ``end_of_data``)."""
        trades = [self._market_close(pos, price, ts, reason)
                  for pos in self.portfolio.positions[:]]
        return [t for t in trades if t is not None]

    def update_levels(self, position_id: int, stop_loss: float | None,
                      take_profit: float | None, price: float, ts: int, by: str,
                      note: str = "") -> str | None:
        """Move a position's fixed levels (None leaves a level, ``nan`` removes it), checked
        against ``price`` (the last close or tick); in force from the next candle.

        Returns:
            None when done, else the reason it was refused (nothing changes then).
        """
        pos = self.portfolio.get(position_id)
        if pos is None:
            return f"no open position with id {position_id}"
        problem = check_levels(pos, stop_loss, take_profit, price)
        if problem is not None:
            return problem
        if stop_loss is not None:
            pos.stop_loss = stop_loss
        if take_profit is not None:
            pos.take_profit = take_profit
        pos.refresh_stop()
        if self.emit is not None:
            self.emit(PositionUpdated(self.run_id, ts, pos.id, pos.symbol, pos.side,
                                      pos.stop_loss, pos.take_profit, pos.trailing_stop, by,
                                      note, pos.entry_price))
        return None
