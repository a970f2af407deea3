"""``paperbot runs``, ``trades``, ``positions`` and ``pnl``: reading forward runs from the
terminal (the run database only; a running service need not be up).

Perpetual runs show what is theirs: the leverage (``runs``, when above 1 or on a perpetual),
each trade's funding (``trades``), each open position's liquidation price and funding so far
(``positions``) and the run's funding (``pnl``, when any was booked or on a perpetual). Money
in the run's quote currency, times UTC.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from data.symbols import quote_currency
from engine import formatting as fmt
from engine.errors import ServiceError
from engine.reporting import exit_dict, trade_dict
from engine.risk.config import Protections
from engine.service import PaperService
from engine.settings import Settings
from engine.store.store import Store
from engine.views import PnlView, PositionView


def add_parsers(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``runs``, ``trades``, ``positions`` and ``pnl`` on the main parser."""
    runs = sub.add_parser("runs", help="list forward runs")
    runs.add_argument("--db", type=Path, help="run database (PAPERBOT_DB_PATH)")
    runs.add_argument("--json", action="store_true")
    add_common(runs)
    runs.set_defaults(handler=list_runs)

    trades = sub.add_parser("trades", help="closed trades of a forward run")
    trades.add_argument("run", help="run id")
    trades.add_argument("--db", type=Path, help="run database (PAPERBOT_DB_PATH)")
    trades.add_argument("--json", action="store_true")
    trades.add_argument("--exits", action="store_true",
                        help="every fill that reduced a position instead (partial exits)")
    add_common(trades)
    trades.set_defaults(handler=list_trades)

    positions = sub.add_parser("positions", help="open positions of one run or of every run")
    positions.add_argument("run", nargs="?", help="run id (default: every run)")
    positions.add_argument("--db", type=Path, help="run database (PAPERBOT_DB_PATH)")
    positions.add_argument("--json", action="store_true")
    add_common(positions)
    positions.set_defaults(handler=list_positions)

    pnl = sub.add_parser("pnl", help="profit and loss of a run since it started")
    pnl.add_argument("run", help="run id")
    pnl.add_argument("--db", type=Path, help="run database (PAPERBOT_DB_PATH)")
    pnl.add_argument("--json", action="store_true")
    add_common(pnl)
    pnl.set_defaults(handler=show_pnl)


async def with_store(settings: Settings, job: Callable[[PaperService], Any],
                     missing: str = "start a run with paperbot forward or set "
                                    "PAPERBOT_DB_PATH / --db") -> Any:
    """``job`` on a service over the run database (read from disk, no engine; never created).

    Raises:
        ServiceError: there is no run database (the message ends with ``missing``).
    """
    if not Path(settings.db_path).exists():
        raise ServiceError(f"no run database at {settings.db_path}; {missing}")
    store = await Store.open(settings.db_path, create=False)
    try:
        return await job(PaperService(settings, store=store))
    finally:
        await store.close()


def list_runs(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot runs``; ``--json`` always carries ``leverage`` (1 on spot)."""
    views = asyncio.run(with_store(settings, lambda s: s.runs()))
    if args.json:
        print(json.dumps([{
            "id": v.id, "status": v.status, "strategy": v.strategy, "symbol": v.symbol,
            "timeframe": v.timeframe, "exchange": v.exchange, "equity": v.equity,
            "balance": v.balance, "return_pct": v.return_pct,
            "open_positions": v.open_positions, "trades": v.trades, "created_at": v.created_at,
            "params": v.params, "protections": v.protections, "locks": list(v.locks),
            "leverage": v.leverage} for v in views]))
        return 0
    if not views:
        print("no runs")
    for v in views:
        leverage = f"  leverage {fmt.leverage(v.leverage)}" if v.shows_leverage else ""
        print(f"{v.id}  {v.status:<8} {v.strategy:<18} {v.symbol:<14} {v.timeframe:<4} "
              f"{v.exchange:<8} equity {fmt.number(v.equity):>12} ({fmt.pct(v.return_pct)})  "
              f"open {v.open_positions}  trades {v.trades}  since {fmt.iso(v.created_at)}"
              f"{leverage}")
        if v.protections:
            print(f"        protections: {Protections.from_dict(v.protections).text()}")
        for reason in v.locks:
            print(f"        ⛔ {reason}")
    return 0


def list_trades(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot trades RUN [--exits] [--json]``: one trade per position (its parts
    listed under it), or with ``--exits`` every fill that reduced a position. A perpetual's
    trades show their funding (quote, signed: negative = paid; part of ``pnl``)."""

    async def load(service: PaperService) -> tuple[list, list]:
        return await service.trades(args.run), await service.exits(args.run)

    trades, exits = asyncio.run(with_store(settings, load))
    if args.exits:
        if args.json:
            print(json.dumps([exit_dict(e) for e in exits]))
            return 0
        for e in exits:
            print(f"#{e.position_id:<4} {fmt.iso(e.time)}  {e.reason:<13} size {e.size:.6g} "
                  f"@ {fmt.number(e.price)}  pnl {fmt.number(e.pnl):>10}  fee "
                  f"{fmt.number(e.fee)}")
        return 0
    if args.json:
        print(json.dumps([trade_dict(t) for t in trades]))
        return 0
    if not trades:
        print(f"run {args.run} has no closed trades")
    parts: dict[int, list] = {}
    for e in exits:
        parts.setdefault(e.position_id, []).append(e)
    for t in trades:
        funding = f"  funding {fmt.number(t.funding)}" if t.on_perpetual else ""
        print(f"#{t.id:<4} {t.side:<5} {fmt.iso(t.entry_time)} → {fmt.iso(t.exit_time)}  "
              f"{fmt.number(t.entry_price)} → {fmt.number(t.exit_price)}  size {t.size:.6g}  "
              f"pnl {fmt.number(t.pnl):>10}  fees {fmt.number(t.fees)}{funding}  "
              f"{t.exit_reason}")
        mine = parts.get(t.id, [])
        if len(mine) > 1:  # left in parts: show each
            for e in mine:
                print(f"        {fmt.iso(e.time)}  {e.reason:<13} {e.size:.6g} @ "
                      f"{fmt.number(e.price)}  pnl {fmt.number(e.pnl)}")
    return 0


def position_dict(v: PositionView) -> dict[str, Any]:
    """A position for ``paperbot positions --json`` (levels None when off)."""
    return {"run_id": v.run_id, "id": v.id, "symbol": v.symbol, "side": v.side,
            "size": v.size, "entry_price": v.entry_price, "entry_time": v.entry_time,
            "mark_price": v.mark_price, "unrealised_pnl": v.unrealised_pnl,
            "stop_loss": v.stop_loss, "take_profit": v.take_profit,
            "liquidation_price": v.liquidation_price, "funding": v.funding}


def list_positions(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot positions [RUN] [--json]``: open positions marked to the last price
    the run stored; a leveraged position also shows its liquidation price."""
    views = asyncio.run(with_store(settings, lambda s: s.positions(args.run)))
    if args.json:
        print(json.dumps([position_dict(v) for v in views]))
        return 0
    if not views:
        print("no open positions")
    for v in views:
        quote = quote_currency(v.symbol)
        upnl = "—" if v.unrealised_pnl is None else \
            f"{fmt.signed_money(v.unrealised_pnl, quote)} ({fmt.pct(v.unrealised_pct)})"
        line = (f"{v.run_id}  #{v.id:<4} {v.side:<5} {v.symbol:<14} size {v.size:.6g}  entry "
                f"{fmt.number(v.entry_price)}  mark {fmt.number(v.mark_price)}  uPnL {upnl}  "
                f"SL {fmt.number(v.stop_loss)}  TP {fmt.number(v.take_profit)}")
        if v.liquidation_price is not None:
            line += f"  liquidation {fmt.number(v.liquidation_price)}"
        if v.funding:
            line += f"  funding {fmt.number(v.funding)}"
        print(line + f"  since {fmt.iso(v.entry_time)}")
    return 0


def show_pnl(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot pnl RUN [--json]``: the figures of ``/pnl``."""
    view: PnlView = asyncio.run(with_store(settings, lambda s: s.pnl(args.run)))
    if args.json:
        out = {k: getattr(view, k) for k in PnlView.__dataclass_fields__}
        print(json.dumps(out))
        return 0
    quote = quote_currency(view.symbol)
    rows = [("Equity", fmt.money(view.equity, quote)), ("Return", fmt.pct(view.return_pct)),
            ("Max drawdown", fmt.pct(view.max_drawdown_pct)),
            ("Realised", fmt.signed_money(view.realised_pnl, quote)),
            ("Unrealised", fmt.signed_money(view.unrealised_pnl, quote)),
            ("Win rate", fmt.pct(view.win_rate_pct, signed=False)),
            ("Trades", f"{view.trades:,} ({view.open_positions} open)"),
            ("Fees", fmt.money(view.fees_paid, quote))]
    if view.funding or view.perpetual:
        rows.append(("Funding", fmt.signed_money(view.funding, quote)
                     + (" (negative = paid)" if view.funding else "")))
    rows.append(("Start balance", fmt.money(view.starting_balance, quote)))
    print(f"PnL · run {view.run_id} · {view.symbol} · {view.status}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    return 0
