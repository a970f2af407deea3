"""Statistics and cross-run reads of the service (``/stats``, ``/daily``…, ``/performance``,
``/trades`` and ``/pnl`` over every run): the service computes, the front-ends format.

``StatsService`` is mixed into ``engine.service.PaperService``; it relies on its store,
``run_record`` and the live equity of runs. Without a run id every method covers every run
and says which (``runs``). Money in quote currency, times ms UTC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from data.symbols import quote_currency
from engine.errors import ServiceError
from engine.stats import (
    PerformanceRow,
    PeriodRow,
    TradeStats,
    performance,
    period_table,
    trade_stats,
)
from engine.stats.periods import PERIODS
from engine.stats.trades import WinCounts
from engine.store.store import RunRecord, now_ms
from engine.types import Trade
from engine.views import PnlView

if TYPE_CHECKING:
    from engine.store.store import Store

#: Trades per page of ``/trades``.
TRADES_PER_PAGE = 10


@dataclass(frozen=True, slots=True)
class Scope:
    """Which runs a statistic covers: their ids, and the quote currency (``""`` if mixed)."""

    runs: tuple[str, ...]
    all_runs: bool
    quote: str


@dataclass(frozen=True, slots=True)
class StatsView:
    """``/stats``: statistics of the closed trades of ``scope``."""

    scope: Scope
    stats: TradeStats


@dataclass(frozen=True, slots=True)
class PeriodView:
    """``/daily``, ``/weekly``, ``/monthly``: ``rows`` newest first."""

    scope: Scope
    period: str
    rows: tuple[PeriodRow, ...]


@dataclass(frozen=True, slots=True)
class TradesPage:
    """A page of closed trades (newest first) as ``(run_id, trade)``; pages count from 1."""

    scope: Scope
    items: tuple[tuple[str, Trade], ...]
    page: int
    pages: int
    total: int


@dataclass(frozen=True, slots=True)
class PnlSummary(WinCounts):
    """``/pnl`` over several runs: each run's view and the sums (quote currency)."""

    scope: Scope
    views: tuple[PnlView, ...]
    starting_balance: float
    equity: float
    realised_pnl: float
    unrealised_pnl: float
    trades: int
    wins: int
    fees_paid: float
    open_positions: int = 0
    #: funding booked over the runs (quote, signed: negative = paid; in realised and balances)
    funding: float = 0.0

    @property
    def perpetual(self) -> bool:
        """True when any of the runs trades a perpetual."""
        return any(v.perpetual for v in self.views)

    @property
    def return_pct(self) -> float:
        """Summed equity over summed starting balances, percent."""
        return (self.equity / self.starting_balance - 1.0) * 100.0 \
            if self.starting_balance else 0.0


class StatsService:
    """Mixin of ``PaperService`` (see the module docstring)."""

    async def _records(self, run_id: str | None) -> tuple[list[RunRecord], Scope]:
        """The runs meant: ``run_id``, or every run (newest first).

        Raises:
            ServiceError: an unknown run id, or no run at all.
        """
        store: Store = self._need_store()  # type: ignore[attr-defined]
        if run_id:
            records = [await self.run_record(run_id)]  # type: ignore[attr-defined]
        else:
            records = await store.runs()
            if not records:
                raise ServiceError("no runs yet; start one with /forward start")
        quotes = {quote_currency(r.symbol) for r in records}
        return records, Scope(tuple(r.id for r in records), not run_id,
                              quotes.pop() if len(quotes) == 1 else "")

    async def _trades_of(self, records: list[RunRecord]) -> list[tuple[str, Trade]]:
        store: Store = self._need_store()  # type: ignore[attr-defined]
        out: list[tuple[str, Trade]] = []
        for record in records:
            out += [(record.id, replace(t, symbol=record.symbol))
                    for t in await store.trades(record.id)]
        return out

    async def stats(self, run_id: str | None = None) -> StatsView:
        """Closed-trade statistics of one run, or of every run."""
        records, scope = await self._records(run_id)
        trades = [t for _, t in await self._trades_of(records)]
        return StatsView(scope, trade_stats(trades))

    async def period_stats(self, period: str, run_id: str | None = None,
                           count: int = 7) -> PeriodView:
        """Realised PnL per ``period`` (``day``, ``week``, ``month``) for the last ``count``.

        Raises:
            ServiceError: an unknown run, a bad period or a count outside 1–60.
        """
        if period not in PERIODS:
            raise ServiceError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
        if not 1 <= count <= 60:
            raise ServiceError(f"count must be between 1 and 60, got {count}")
        records, scope = await self._records(run_id)
        trades = [t for _, t in await self._trades_of(records)]
        balance = sum(r.starting_balance for r in records)
        rows = period_table(trades, period, count, now_ms(), balance)
        return PeriodView(scope, period, tuple(rows))

    async def performance(self) -> list[PerformanceRow]:
        """Realised PnL per strategy and symbol over every run (best first)."""
        records, _ = await self._records(None)
        store: Store = self._need_store()  # type: ignore[attr-defined]
        return performance([(r.strategy, r.symbol, r.starting_balance,
                             await store.trades(r.id)) for r in records])

    async def trades_page(self, run_id: str | None = None, page: int = 1,
                          per_page: int = TRADES_PER_PAGE) -> TradesPage:
        """Closed trades, newest first, one page of ``per_page`` (the last page when ``page``
        is beyond it)."""
        records, scope = await self._records(run_id)
        items = sorted(await self._trades_of(records),
                       key=lambda item: (item[1].exit_time, item[0], item[1].id), reverse=True)
        pages = max(1, math.ceil(len(items) / per_page))
        page = min(max(1, page), pages)
        chunk = items[(page - 1) * per_page: page * per_page]
        return TradesPage(scope, tuple(chunk), page, pages, len(items))

    async def pnl_summary(self, run_id: str | None = None) -> PnlSummary:
        """``/pnl``: one run's figures, or every run's with their sums."""
        records, scope = await self._records(run_id)
        views = [await self.pnl(r.id) for r in records]  # type: ignore[attr-defined]
        store: Store = self._need_store()  # type: ignore[attr-defined]
        wins = 0
        for r in records:
            wins += sum(t.pnl > 0 for t in await store.trades(r.id))
        return PnlSummary(
            scope, tuple(views), sum(v.starting_balance for v in views),
            sum(v.equity for v in views), sum(v.realised_pnl for v in views),
            sum(v.unrealised_pnl for v in views), sum(v.trades for v in views), wins,
            sum(v.fees_paid for v in views), sum(v.open_positions for v in views),
            sum(v.funding for v in views))

    async def equity_at(self, run_id: str, ts: int) -> float | None:
        """The run's equity recorded at or before ``ts`` (ms UTC; a candle close), quote
        currency; None before its first record."""
        store: Store = self._need_store()  # type: ignore[attr-defined]
        async with store.db.execute(
                "SELECT equity FROM equity WHERE run_id=? AND ts<=? ORDER BY ts DESC, "
                "kind='candle' DESC LIMIT 1", (run_id, ts)) as cur:
            row = await cur.fetchone()
        return float(row[0]) if row else None

    async def realised_until(self, run_id: str, trade: Trade) -> float:
        """The run's realised PnL (quote) over its trades closed up to ``trade``, included."""
        store: Store = self._need_store()  # type: ignore[attr-defined]
        return sum(t.pnl for t in await store.trades(run_id)
                   if (t.exit_time, t.id) <= (trade.exit_time, trade.id))
