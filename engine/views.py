"""Read models of forward runs for the front-ends (CLI tables, Discord embeds).

Plain frozen dataclasses: money in quote currency, sizes in base units, times ms UTC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from data.symbols import SymbolError, is_perpetual
from engine.metrics import drawdown_series
from engine.store.store import RunRecord
from engine.types import Position, Trade, nan_to_none


@dataclass(frozen=True, slots=True)
class RunView:
    """A run with its current figures."""

    id: str
    strategy: str
    symbol: str
    timeframe: str
    exchange: str
    status: str
    starting_balance: float
    balance: float
    equity: float
    open_positions: int
    trades: int
    created_at: int
    started_by: str | None
    channel_id: int | None
    params: dict
    last_candle_ts: int | None
    stop_reason: str | None
    #: what the run is doing now: its status, or ``waiting for data`` while a running run
    #: waits for the exchange (cannot resume yet, or its feed is down)
    state: str = ""
    #: why, for ``waiting for data`` (the last error)
    state_detail: str = ""
    #: the risk guards the run keeps (``engine.risk.Protections.to_dict``; empty: none)
    protections: dict = field(default_factory=dict)
    #: the reason of each guard lock in force now, e.g. ``"cooldown: no entries until
    #: 2025-05-20 17:00 UTC (…)"`` (empty: entries allowed)
    locks: tuple[str, ...] = ()
    #: notional / margin (1 on spot; ``engine.perp.leverage``)
    leverage: float = 1.0

    @property
    def return_pct(self) -> float:
        """Equity over starting balance, percent."""
        return (self.equity / self.starting_balance - 1.0) * 100.0

    @property
    def perpetual(self) -> bool:
        """True when the run trades a perpetual (``BTC/USDT:USDT``)."""
        return perpetual(self.exchange, self.symbol)

    @property
    def shows_leverage(self) -> bool:
        """True when the front-ends show the leverage: above 1, or on a perpetual."""
        return self.leverage > 1.0 or self.perpetual


@dataclass(frozen=True, slots=True)
class PositionView:
    """An open position marked to the last price."""

    run_id: str
    id: int
    symbol: str
    side: str
    size: float
    entry_price: float
    entry_time: int
    mark_price: float | None
    unrealised_pnl: float | None
    unrealised_pct: float | None
    stop_loss: float | None
    take_profit: float | None
    #: isolated-margin liquidation level (quote; None at leverage 1, ``engine.perp``)
    liquidation_price: float | None = None
    #: funding booked while held so far (quote, signed: negative = paid)
    funding: float = 0.0


@dataclass(frozen=True, slots=True)
class PnlView:
    """Profit and loss of a run since it started."""

    run_id: str
    symbol: str
    starting_balance: float
    balance: float
    equity: float
    realised_pnl: float
    unrealised_pnl: float
    return_pct: float
    trades: int
    win_rate_pct: float | None
    max_drawdown_pct: float
    fees_paid: float
    status: str = ""
    open_positions: int = 0
    #: funding booked on the run's positions, closed and open (quote, signed: negative =
    #: paid; included in ``realised_pnl`` for closed trades and in the balance for open ones)
    funding: float = 0.0
    #: True when the run trades a perpetual (whose funding the front-ends show even at 0)
    perpetual: bool = False


def position_view(run_id: str, symbol: str, pos: Position, mark: float | None) -> PositionView:
    """``pos`` marked at ``mark`` (None when no price is known yet)."""
    pnl = pct = None
    if mark is not None and not math.isnan(mark):
        pnl = (mark - pos.entry_price) * pos.size * pos.direction
        pct = pnl / (pos.entry_price * pos.size) * 100.0
    return PositionView(run_id, pos.id, symbol, pos.side, pos.size, pos.entry_price,
                        pos.entry_time, mark, pnl, pct, nan_to_none(pos.stop_loss),
                        nan_to_none(pos.take_profit), nan_to_none(pos.liquidation_price),
                        pos.funding)


def run_view(rec: RunRecord, balance: float, equity: float, open_positions: int,
             trades: int, state: str | None = None, state_detail: str = "",
             locks: tuple[str, ...] = ()) -> RunView:
    """A ``RunView`` from a record and current figures (``state`` defaults to the status)."""
    return RunView(rec.id, rec.strategy, rec.symbol, rec.timeframe, rec.exchange, rec.status,
                   rec.starting_balance, balance, equity, open_positions, trades,
                   rec.created_at, rec.started_by, rec.channel_id, rec.params,
                   rec.last_candle_ts, rec.stop_reason, state or rec.status, state_detail,
                   dict(rec.protections), locks, rec.leverage)


def pnl_view(rec: RunRecord, balance: float, equity: float, trades: list[Trade],
             curve: list[float], open_positions: int = 0, open_funding: float = 0.0) -> PnlView:
    """A ``PnlView``; ``curve`` is the stored equity points in time order, ``open_funding``
    the funding booked on the positions still open (quote, signed)."""
    wins = sum(1 for t in trades if t.pnl > 0)
    points = [rec.starting_balance, *curve, equity]
    drawdown = float(drawdown_series(points).min()) * 100.0
    return PnlView(
        run_id=rec.id, symbol=rec.symbol, starting_balance=rec.starting_balance,
        balance=balance, equity=equity, realised_pnl=sum(t.pnl for t in trades),
        unrealised_pnl=equity - balance,
        return_pct=(equity / rec.starting_balance - 1.0) * 100.0, trades=len(trades),
        win_rate_pct=wins / len(trades) * 100.0 if trades else None,
        max_drawdown_pct=drawdown, fees_paid=sum(t.fees for t in trades), status=rec.status,
        open_positions=open_positions, funding=sum(t.funding for t in trades) + open_funding,
        perpetual=perpetual(rec.exchange, rec.symbol))


def perpetual(exchange: str, symbol: str) -> bool:
    """True when ``symbol`` on ``exchange`` is a perpetual (False for a malformed symbol)."""
    try:
        return is_perpetual(exchange, symbol)
    except SymbolError:
        return False
