"""The portfolio: balance, open positions, closed trades, equity and margin.

Positions are linear (USDT-margined). Accounting (DESIGN §4):

* opening pays the entry fee from ``balance`` and reserves ``margin = notional / leverage``;
* each exit (partial or final) adds the gross PnL ``(exit - entry) × size × direction`` of the
  size that leaves and pays its exit fee; the margin shrinks pro rata; the part's PnL is
  charged its pro-rata share of the entry fee (DESIGN §4b). The last part closes the position
  into one ``Trade`` (size-weighted average exit price, summed PnL and fees); every part is an
  ``Exit`` in ``exits``;
* ``equity = balance + Σ unrealised PnL`` at the mark price (the last close or tick);
* ``free_margin = equity - Σ margin``; an order needing more than that is rejected;
* perpetuals: funding payments are booked on the balance when they settle and accumulated on
  the position (``engine.perp.funding``); the closed trade's ``pnl`` includes them and its
  ``funding`` shows them. A leveraged position carries its liquidation level
  (``engine.perp.liquidation``), checked by the broker like a stop.

Strategies receive the portfolio read-only: they act through ``Signal``s, never by calling the
mutating methods here, which belong to the broker (``engine.core``).
"""

from __future__ import annotations

from engine.types import NAN, Exit, Position, Trade, direction_of

#: A remainder below this fraction of the initial size is dust: the exit takes it all.
DUST = 1e-9


class Portfolio:
    """Cash and positions of one run on one symbol.

    Args:
        balance: starting cash, quote currency, > 0.
        symbol: unified symbol, e.g. ``"BTC/USDT"``.
        leverage: notional / margin; 1.0 (the default) means fully funded.

    Raises:
        ValueError: for a non-positive balance or leverage.
    """

    __slots__ = ("_next_id", "balance", "exits", "leverage", "mark_price", "positions",
                 "starting_balance", "symbol", "trades")

    def __init__(self, balance: float, symbol: str, leverage: float = 1.0) -> None:
        if not balance > 0:
            raise ValueError(f"starting balance must be positive, got {balance}")
        if not leverage > 0:
            raise ValueError(f"leverage must be positive, got {leverage}")
        self.starting_balance = float(balance)
        self.balance = float(balance)
        self.symbol = symbol
        self.leverage = float(leverage)
        self.positions: list[Position] = []
        self.trades: list[Trade] = []
        self.exits: list[Exit] = []
        self.mark_price = NAN
        self._next_id = 1

    # ---- read side (what strategies use) -------------------------------------------------
    @property
    def equity(self) -> float:
        """Balance plus unrealised PnL of every position at ``mark_price`` (quote)."""
        equity = self.balance
        mark = self.mark_price
        for pos in self.positions:
            equity += (mark - pos.entry_price) * pos.size * pos.direction
        return equity

    @property
    def used_margin(self) -> float:
        """Margin reserved by open positions (quote)."""
        return sum(pos.margin for pos in self.positions)

    @property
    def free_margin(self) -> float:
        """Equity not reserved as margin (quote); new orders must fit in it."""
        return self.equity - self.used_margin

    @property
    def is_flat(self) -> bool:
        """True when no position is open."""
        return not self.positions

    def positions_of(self, side: str) -> list[Position]:
        """Open positions of ``side`` (``"long"`` or ``"short"``)."""
        return [pos for pos in self.positions if pos.side == side]

    def get(self, position_id: int) -> Position | None:
        """The open position with ``position_id``, or None."""
        for pos in self.positions:
            if pos.id == position_id:
                return pos
        return None

    # ---- write side (broker only) --------------------------------------------------------
    def open(self, side: str, size: float, price: float, fee: float, ts: int,
             stop_loss: float = NAN, take_profit: float = NAN, tag: str = "",
             trailing_stop_pct: float = NAN, take_profits: list[list[float]] | None = None,
             max_hold: int = 0, liquidation_price: float = NAN) -> Position:
        """Record a filled entry and pay its fee. Returns the new position.

        ``take_profits`` are scale-out levels ``[price, fraction of size]``, nearest first;
        ``liquidation_price`` the isolated-margin liquidation level (``nan``: none).
        """
        direction = direction_of(side)
        trailing = NAN
        if trailing_stop_pct == trailing_stop_pct:  # not nan: the first level, from the entry
            trailing = price * (1.0 - direction * trailing_stop_pct / 100.0)
        pos = Position(
            id=self._next_id,
            symbol=self.symbol,
            side=side,
            direction=direction,
            size=size,
            entry_price=price,
            entry_time=ts,
            entry_fee=fee,
            stop_loss=stop_loss,
            take_profit=take_profit,
            margin=price * size / self.leverage,
            tag=tag,
            trailing_stop_pct=trailing_stop_pct,
            trailing_stop=trailing,
            take_profits=take_profits or [],
            max_hold=max_hold,
            liquidation_price=liquidation_price,
        )
        self._next_id += 1
        self.balance -= fee
        self.positions.append(pos)
        return pos

    def reduce(self, pos: Position, size: float, price: float, fee: float, ts: int,
               reason: str, settled_on_recovery: bool = False) -> tuple[Exit, Trade | None]:
        """Record a fill of ``size`` base units of ``pos`` leaving at ``price`` (quote) with
        exit fee ``fee``: realise its PnL, pay the fee, free its margin. ``size`` at or above
        the remaining size (or leaving dust) closes the position.

        Returns:
            (the exit, the trade when the position is now closed else None).
        """
        last = size >= pos.size * (1.0 - DUST) or pos.size - size <= DUST * pos.initial_size
        if last:
            size = pos.size
            entry_part = pos.entry_fee - pos.entry_fee_settled
        else:
            entry_part = pos.entry_fee * size / pos.initial_size
        gross = (price - pos.entry_price) * size * pos.direction
        pnl = gross - entry_part - fee
        self.balance += gross - fee
        exit_ = Exit(pos.id, ts, price, size, reason, pnl, fee)
        self.exits.append(exit_)
        if not last:
            pos.margin -= pos.margin * size / pos.size
            pos.size -= size
            pos.realised_pnl += pnl
            pos.exit_fees += fee
            pos.exited_size += size
            pos.exit_value += price * size
            pos.entry_fee_settled += entry_part
            return exit_, None
        self.positions.remove(pos)
        parts = pos.exited_size > 0.0
        trade = Trade(
            id=pos.id,
            symbol=pos.symbol,
            side=pos.side,
            size=pos.initial_size,
            entry_time=pos.entry_time,
            entry_price=pos.entry_price,
            exit_time=ts,
            exit_price=(pos.exit_value + price * size) / pos.initial_size if parts else price,
            pnl=(pos.realised_pnl + pnl if parts else pnl) + pos.funding,
            entry_fee=pos.entry_fee,
            exit_fee=pos.exit_fees + fee if parts else fee,
            exit_reason=reason,
            stop_loss=pos.stop_level,
            take_profit=pos.take_profit,
            tag=pos.tag,
            settled_on_recovery=settled_on_recovery,
            funding=pos.funding,
        )
        self.trades.append(trade)
        return exit_, trade

    # ---- persistence -----------------------------------------------------------------------
    @property
    def next_position_id(self) -> int:
        """The id the next opened position will get."""
        return self._next_id

    def restore(self, balance: float, positions: list[Position], next_id: int) -> None:
        """Reset cash and open positions from stored state (forward-run recovery)."""
        self.balance = float(balance)
        self.positions = list(positions)
        self._next_id = int(next_id)
