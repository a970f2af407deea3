"""Core trading types: candles, signals, positions, trades.

Units everywhere: time in int ms UTC; prices in quote currency; size in base units; money
(balance, PnL, fees) in quote currency. A side is ``"long"`` or ``"short"``; its ``direction``
is ``+1`` or ``-1``. Stop-loss and take-profit are absolute prices, ``nan`` when off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from data.ohlcv import Candle

Side = Literal["long", "short"]

NAN = math.nan

__all__ = ["Candle", "ExitCounts", "Position", "Rejection", "Signal", "Trade"]


def direction_of(side: str) -> int:
    """``+1`` for ``"long"``, ``-1`` for ``"short"``."""
    return 1 if side == "long" else -1


@dataclass(slots=True)
class Signal:
    """An instruction from a strategy to the broker, acted on at the signal candle's close.

    Build one with the constructors: ``Signal.open_long(size_percent=95, stop_loss=…)``,
    ``Signal.open_short(…)``, ``Signal.close(position_id)``, ``Signal.close_all()``.

    Attributes:
        action: ``"open_long" | "open_short" | "close" | "close_all"``.
        size_percent: for opens, percent of equity to put into the position's notional
            (size = equity × size_percent / 100 / fill price).
        size: for opens, an absolute size in base units instead of ``size_percent``.
        stop_loss: absolute price (quote) or ``nan`` for none.
        take_profit: absolute price (quote) or ``nan`` for none.
        position_id: for ``close``: the position to close.
        side: for ``close_all``: only positions of this side (None: every position).
        tag: free text kept on the trade (e.g. why the strategy entered).
    """

    action: str
    size_percent: float = NAN
    size: float = NAN
    stop_loss: float = NAN
    take_profit: float = NAN
    position_id: int | None = None
    side: str | None = None
    tag: str = ""

    @classmethod
    def open_long(cls, size_percent: float = NAN, *, size: float = NAN,
                  stop_loss: float | None = None, take_profit: float | None = None,
                  tag: str = "") -> Signal:
        """Open a long (buy) at market: give ``size_percent`` of equity or ``size`` in base."""
        return cls("open_long", size_percent, size, none_to_nan(stop_loss),
                   none_to_nan(take_profit), tag=tag)

    @classmethod
    def open_short(cls, size_percent: float = NAN, *, size: float = NAN,
                   stop_loss: float | None = None, take_profit: float | None = None,
                   tag: str = "") -> Signal:
        """Open a short (sell) at market: give ``size_percent`` of equity or ``size`` in base."""
        return cls("open_short", size_percent, size, none_to_nan(stop_loss),
                   none_to_nan(take_profit), tag=tag)

    @classmethod
    def close(cls, position_id: int, tag: str = "") -> Signal:
        """Close the position ``position_id`` at market."""
        return cls("close", position_id=position_id, tag=tag)

    @classmethod
    def close_all(cls, side: Side | None = None, tag: str = "") -> Signal:
        """Close every open position (of ``side`` only, when given) at market."""
        return cls("close_all", side=side, tag=tag)


def none_to_nan(price: float | None) -> float:
    """An optional level as stored in the types: None (off) becomes ``nan``."""
    return NAN if price is None else float(price)


def nan_to_none(value: float | None) -> float | None:
    """A level for JSON, SQL or display: ``nan`` (off) becomes None."""
    return None if value is None or math.isnan(value) else value


@dataclass(slots=True)
class Position:
    """An open position.

    Attributes:
        id: position id, unique in its portfolio; the closed trade keeps it.
        side: ``"long"`` or ``"short"``; ``direction`` is ``+1``/``-1``.
        size: base units, always > 0.
        entry_price: fill price after slippage (quote).
        entry_time: fill time, ms UTC (the signal candle's close).
        entry_fee: quote currency, already paid from the balance.
        stop_loss, take_profit: absolute prices (quote) or ``nan``.
        margin: quote currency reserved: entry notional / leverage.
    """

    id: int
    symbol: str
    side: str
    direction: int
    size: float
    entry_price: float
    entry_time: int
    entry_fee: float
    stop_loss: float = NAN
    take_profit: float = NAN
    margin: float = 0.0
    tag: str = ""

    def unrealised_pnl(self, mark_price: float) -> float:
        """Gross PnL (quote) if closed at ``mark_price``, before exit fee and slippage."""
        return (mark_price - self.entry_price) * self.size * self.direction

    @property
    def notional(self) -> float:
        """Entry notional in quote currency: ``entry_price × size``."""
        return self.entry_price * self.size


@dataclass(slots=True)
class Trade:
    """A closed position.

    ``pnl`` is net of both fees (quote); ``fees`` = ``entry_fee + exit_fee``; ``pnl_pct`` is
    ``pnl`` over the entry notional, in percent. Times are ms UTC of the fills.
    ``settled_on_recovery`` marks a forward-run exit found while catching up after downtime.
    """

    id: int
    symbol: str
    side: str
    size: float
    entry_time: int
    entry_price: float
    exit_time: int
    exit_price: float
    pnl: float
    entry_fee: float
    exit_fee: float
    exit_reason: str
    stop_loss: float = NAN
    take_profit: float = NAN
    tag: str = ""
    settled_on_recovery: bool = False

    @property
    def fees(self) -> float:
        """Entry plus exit fee, quote currency."""
        return self.entry_fee + self.exit_fee

    @property
    def pnl_pct(self) -> float:
        """Net PnL as a percentage of the entry notional."""
        notional = self.entry_price * self.size
        return self.pnl / notional * 100.0 if notional else 0.0

    @property
    def duration_ms(self) -> int:
        """Time held, ms."""
        return self.exit_time - self.entry_time


@dataclass(frozen=True, slots=True)
class Rejection:
    """A signal the broker refused, with the reason. ``ts``: candle close time, ms UTC."""

    ts: int
    action: str
    reason: str


@dataclass(slots=True)
class ExitCounts:
    """How stop-loss/take-profit ambiguities were settled in a run.

    ``drill_down``: both levels inside one candle, resolved from lower-timeframe candles;
    ``conservative``: still ambiguous at 1m, or no lower data: assumed stop-loss.
    """

    drill_down: int = 0
    conservative: int = 0
