"""Core trading types: candles, signals, positions, trades.

Units everywhere: time in int ms UTC; prices in quote currency; size in base units; money
(balance, PnL, fees) in quote currency. A side is ``"long"`` or ``"short"``; its ``direction``
is ``+1`` or ``-1``. Stop-loss and take-profit are absolute prices, ``nan`` when off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from data.ohlcv import Candle

Side = Literal["long", "short"]

NAN = math.nan

__all__ = ["Candle", "Exit", "ExitCounts", "Position", "Rejection", "Signal", "Trade"]

#: Every exit reason a trade or an exit can carry.
EXIT_REASONS = ("stop_loss", "trailing_stop", "take_profit", "time_exit", "signal", "manual",
                "max_drawdown", "liquidation", "end_of_data")


def direction_of(side: str) -> int:
    """``+1`` for ``"long"``, ``-1`` for ``"short"``."""
    return 1 if side == "long" else -1


@dataclass(slots=True)
class Signal:
    """An instruction from a strategy to the broker, acted on at the signal candle's close.

    Build one with the constructors: ``Signal.open_long(size_percent=95, stop_loss=…)``,
    ``Signal.open_short(…)``, ``Signal.update(position_id, stop_loss=…)``,
    ``Signal.close(position_id[, fraction=… | size=…])``, ``Signal.close_all()``.
    Invalid requests are rejected with a reason (a ``Rejection``), never raised.

    Attributes:
        action: ``"open_long" | "open_short" | "update" | "close" | "close_all"``.
        size_percent: for opens, percent of equity to put into the position's notional
            (size = equity × size_percent / 100 / fill price).
        size: for opens, an absolute size in base units instead of ``size_percent``; for
            ``close``, the base units to sell/buy back (a partial exit).
        stop_loss: absolute price (quote) or ``nan`` for none (``update``: see ``mask``).
        take_profit: absolute price (quote) or ``nan`` for none (``update``: see ``mask``).
        position_id: for ``update`` and ``close``: the position.
        side: for ``close_all``: only positions of this side (None: every position).
        tag: free text kept on the trade (e.g. why the strategy entered).
        fraction: for ``close``: the fraction of the position's current remaining size.
        trailing_stop_pct: for opens, a trailing stop this % from the best price (nan: off).
        take_profits: for opens, scale-out levels ``((price, fraction of the initial
            size), …)``; fractions sum to at most 1.
        max_hold: for opens, leave at the close of the ``max_hold``-th base candle after the
            entry (0: no time exit).
        mask: for ``update``: 1 = ``stop_loss`` given, 2 = ``take_profit`` given.
    """

    action: str
    size_percent: float = NAN
    size: float = NAN
    stop_loss: float = NAN
    take_profit: float = NAN
    position_id: int | None = None
    side: str | None = None
    tag: str = ""
    fraction: float = NAN
    trailing_stop_pct: float = NAN
    take_profits: tuple[tuple[float, float], ...] = ()
    max_hold: int = 0
    mask: int = 0

    @classmethod
    def open_long(cls, size_percent: float = NAN, *, size: float = NAN,
                  stop_loss: float | None = None, take_profit: float | None = None,
                  trailing_stop_pct: float | None = None,
                  take_profits: list[tuple[float, float]] | None = None, max_hold: int = 0,
                  tag: str = "") -> Signal:
        """Open a long (buy) at market: give ``size_percent`` of equity or ``size`` in base.

        Options: ``stop_loss``/``take_profit`` (absolute prices), ``trailing_stop_pct`` (a
        stop that follows the best price at this distance in %), ``take_profits`` (scale-out
        levels as ``[(price, fraction of the initial size), …]``), ``max_hold`` (base candles;
        a market exit at the close of the ``max_hold``-th candle after the entry).
        """
        return cls("open_long", size_percent, size, none_to_nan(stop_loss),
                   none_to_nan(take_profit), tag=tag,
                   trailing_stop_pct=none_to_nan(trailing_stop_pct),
                   take_profits=_levels_tuple(take_profits), max_hold=int(max_hold))

    @classmethod
    def open_short(cls, size_percent: float = NAN, *, size: float = NAN,
                   stop_loss: float | None = None, take_profit: float | None = None,
                   trailing_stop_pct: float | None = None,
                   take_profits: list[tuple[float, float]] | None = None, max_hold: int = 0,
                   tag: str = "") -> Signal:
        """Open a short (sell) at market; options as for ``open_long`` (levels below the
        entry for take-profits, above it for the stop-loss)."""
        return cls("open_short", size_percent, size, none_to_nan(stop_loss),
                   none_to_nan(take_profit), tag=tag,
                   trailing_stop_pct=none_to_nan(trailing_stop_pct),
                   take_profits=_levels_tuple(take_profits), max_hold=int(max_hold))

    @classmethod
    def update(cls, position_id: int, *, stop_loss: float | None = None,
               take_profit: float | None = None, tag: str = "") -> Signal:
        """Move the stop-loss and/or take-profit of an open position (absolute prices).

        ``None`` leaves a level as it is, ``nan`` removes it. The new level is in force from
        the next candle; one on the wrong side of the signal candle's close (or equal to it)
        is rejected.
        """
        mask = (0 if stop_loss is None else 1) | (0 if take_profit is None else 2)
        return cls("update", stop_loss=none_to_nan(stop_loss),
                   take_profit=none_to_nan(take_profit), position_id=position_id, tag=tag,
                   mask=mask)

    @classmethod
    def close(cls, position_id: int, tag: str = "", *, fraction: float | None = None,
              size: float | None = None) -> Signal:
        """Close the position ``position_id`` at market: all of it, or a ``fraction`` of its
        current remaining size, or ``size`` base units (a partial exit)."""
        return cls("close", position_id=position_id, tag=tag, fraction=none_to_nan(fraction),
                   size=none_to_nan(size))

    @classmethod
    def close_all(cls, side: Side | None = None, tag: str = "") -> Signal:
        """Close every open position (of ``side`` only, when given) at market."""
        return cls("close_all", side=side, tag=tag)


def _levels_tuple(levels: list[tuple[float, float]] | None) -> tuple[tuple[float, float], ...]:
    """Scale-out levels as a tuple of ``(price, fraction)`` floats (unchecked: the broker
    rejects bad ones with a reason)."""
    if not levels:
        return ()
    out = []
    for item in levels:
        try:
            price, fraction = item
            out.append((float(price), float(fraction)))
        except (TypeError, ValueError):
            out.append((NAN, NAN))  # rejected by the broker, with the reason
    return tuple(out)


def _tighter(direction: int, a: float, b: float) -> float:
    """The tighter of two stop levels (the higher for a long, the lower for a short); a
    ``nan`` level is none."""
    if b != b:
        return a
    if a != a:
        return b
    return (a if a > b else b) if direction > 0 else (a if a < b else b)


def none_to_nan(price: float | None) -> float:
    """An optional level as stored in the types: None (off) becomes ``nan``."""
    return NAN if price is None else float(price)


def nan_to_none(value: float | None) -> float | None:
    """A level for JSON, SQL or display: ``nan`` (off) becomes None."""
    return None if value is None or math.isnan(value) else value


@dataclass(slots=True)
class Position:
    """An open position (strategies read it; only the broker changes it).

    Attributes:
        id: position id, unique in its portfolio; the closed trade keeps it.
        side: ``"long"`` or ``"short"``; ``direction`` is ``+1``/``-1``.
        size: remaining size, base units, > 0 (less than ``initial_size`` after partial exits).
        entry_price: fill price after slippage (quote).
        entry_time: fill time, ms UTC (the signal candle's close).
        entry_fee: quote currency, already paid from the balance (whole position).
        stop_loss, take_profit: the fixed levels, absolute prices (quote) or ``nan``.
        margin: quote currency reserved for the remaining size: its entry notional / leverage.
        initial_size: size at entry, base units.
        trailing_stop_pct: distance of the trailing stop from the best price, % (``nan``: off).
        trailing_stop: the trailing level in force (quote; set at each close from
            ``best_price``, never loosens; ``nan`` when off).
        best_price: highest high (long) / lowest low (short) of the candles held through,
            starting at the entry price (quote).
        take_profits: scale-out levels still pending, ``[price, fraction of initial size]``,
            nearest first.
        max_hold: time exit after this many base candles (0: none).
        candles_held: base candles the position has been held through.
        active_stop: the stop in force: the tighter of ``stop_loss``, ``trailing_stop`` and
            ``liquidation_price`` (the level checked intrabar).
        realised_pnl, exit_fees, exited_size, exit_value, entry_fee_settled: what the partial
            exits so far realised (quote; ``exit_value`` = Σ exit price × size).
        funding: funding booked while held (quote, signed: negative = paid;
            ``engine.perp.funding``).
        liquidation_price: isolated-margin liquidation level (quote; ``nan`` at leverage 1;
            ``engine.perp.liquidation``).
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
    initial_size: float = NAN
    trailing_stop_pct: float = NAN
    trailing_stop: float = NAN
    best_price: float = NAN
    take_profits: list[list[float]] = field(default_factory=list)
    max_hold: int = 0
    candles_held: int = 0
    active_stop: float = NAN
    realised_pnl: float = 0.0
    exit_fees: float = 0.0
    exited_size: float = 0.0
    exit_value: float = 0.0
    entry_fee_settled: float = 0.0
    funding: float = 0.0
    liquidation_price: float = NAN

    def __post_init__(self) -> None:
        if math.isnan(self.initial_size):
            self.initial_size = self.size
        if math.isnan(self.best_price):
            self.best_price = self.entry_price
        self.take_profits = [list(level) for level in self.take_profits]
        self.refresh_stop()

    def refresh_stop(self) -> None:
        """Recompute ``active_stop``: the tighter of the fixed stop, the trailing stop and the
        liquidation level (a leveraged position is liquidated first when the stop is beyond
        it). The trailing level comes first so that on a tie the fixed stop is kept."""
        direction = self.direction
        self.active_stop = _tighter(direction, _tighter(direction, self.trailing_stop,
                                                        self.stop_loss), self.liquidation_price)

    @property
    def stop_level(self) -> float:
        """The stop-loss in force without the liquidation level: the tighter of the fixed and
        the trailing stop (quote; ``nan`` for none)."""
        return _tighter(self.direction, self.stop_loss, self.trailing_stop)

    @property
    def trailing_active(self) -> bool:
        """True when the trailing level is the stop in force (tighter than or equal to the
        fixed stop-loss)."""
        return not math.isnan(self.trailing_stop) and self.active_stop == self.trailing_stop

    def unrealised_pnl(self, mark_price: float) -> float:
        """Gross PnL (quote) of the remaining size at ``mark_price``, before exit costs."""
        return (mark_price - self.entry_price) * self.size * self.direction

    @property
    def notional(self) -> float:
        """Entry notional of the remaining size, quote currency: ``entry_price × size``."""
        return self.entry_price * self.size


@dataclass(frozen=True, slots=True)
class Exit:
    """One fill that reduced a position (a partial or the final exit).

    Attributes:
        position_id: the position (= the trade's id).
        time: fill time, ms UTC.
        price: fill price after slippage (quote).
        size: base units that left.
        reason: ``stop_loss | trailing_stop | take_profit | time_exit | signal | manual |
            max_drawdown | liquidation | end_of_data`` (``max_drawdown``: closed by the
            drawdown guard's flatten, ``engine.risk``; ``liquidation``: the price reached the
            isolated-margin liquidation level, ``engine.perp.liquidation``).
        pnl: this part's net PnL (quote): gross − its pro-rata share of the entry fee − fee.
        fee: this part's exit fee (quote).
    """

    position_id: int
    time: int
    price: float
    size: float
    reason: str
    pnl: float
    fee: float


@dataclass(slots=True)
class Trade:
    """A closed position: one trade per position, however many parts it left in.

    ``size`` is the initial size; ``exit_price`` the size-weighted average exit price and
    ``exit_time``/``exit_reason`` those of the final part; ``pnl`` is net of the entry fee,
    every exit fee and the funding (quote); ``exit_fee`` sums the exit fees; ``fees`` =
    ``entry_fee + exit_fee``; ``funding`` is the funding booked while the position was held
    (perpetuals; quote, signed: negative = paid; not part of the ``exits``); ``pnl_pct`` is
    ``pnl`` over the entry notional, in percent. ``stop_loss`` and ``take_profit`` are the
    levels in force at the end (the trailing level when it was the stop in force; never the
    liquidation level). Times are ms UTC of the fills. ``settled_on_recovery`` marks a
    forward-run exit found while catching up after downtime. The parts are in ``exits``
    (``Exit``).
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
    funding: float = 0.0

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

    @property
    def on_perpetual(self) -> bool:
        """True for a perpetual's trade: funding was booked, or the symbol is a perpetual's
        (``BASE/QUOTE:SETTLE``); reports show its funding then, even when it is 0."""
        return bool(self.funding) or ":" in self.symbol


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
