"""``paperbot forward``, ``paperbot runs``, ``paperbot trades``: forward runs from the terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import formatting as fmt
from engine.allocator import limit_heap_fragmentation
from engine.cli.backtest_cmd import add_protect_option, protect_pairs
from engine.errors import ServiceError
from engine.events import (
    DailySummary,
    EngineError,
    Event,
    FeedLost,
    FeedRestored,
    GuardLifted,
    GuardTripped,
    RunStarted,
    RunStopped,
    SignalRejected,
    TradeClosed,
    TradeOpened,
    event_name,
    to_record,
)
from engine.forward.engine import RunSpec
from engine.limits import check_balance
from engine.reporting import exit_dict, trade_dict
from engine.risk.config import Protections
from engine.runtime import Runtime, wait_for_stop
from engine.service import PaperService
from engine.settings import Settings
from engine.store.store import Store
from engine.strategy import parse_param_pairs
from engine.types import nan_to_none


def add_parsers(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register the forward-run subcommands on the main parser."""
    fw = sub.add_parser("forward", help="paper-trade live candles until interrupted")
    fw.add_argument("--strategy", help="start a new run of this strategy (else only resume)")
    fw.add_argument("--symbol", help="unified symbol, e.g. BTC/USDT (BTC/USDT:USDT = perpetual)")
    fw.add_argument("--timeframe", help="base timeframe (default: the strategy's)")
    fw.add_argument("--exchange", help="bybit (default) or binance")
    fw.add_argument("--balance", type=float, help="starting balance in quote currency")
    fw.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    add_protect_option(fw)
    fw.add_argument("--db", type=Path, help="run database (PAPERBOT_DB_PATH)")
    fw.add_argument("--json-events", action="store_true", help="one JSON object per event")
    add_common(fw)
    fw.set_defaults(handler=forward)

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


# ---- event printing ----------------------------------------------------------------------------
def event_json(event: Event) -> dict[str, Any]:
    """One JSON line: ``type``, ``run_id``, ``ts`` plus the trade fields of ``backtest --json``."""
    out: dict[str, Any] = {"type": event_name(event), "run_id": event.run_id, "ts": event.ts}
    if isinstance(event, TradeClosed):
        out.update(trade_dict(event.trade), symbol=event.trade.symbol,
                   settled_on_recovery=event.trade.settled_on_recovery)
    elif isinstance(event, TradeOpened):
        pos = event.position
        out.update(id=pos.id, side=pos.side, entry_time=pos.entry_time,
                   entry_price=pos.entry_price, size=pos.size, fees=pos.entry_fee,
                   symbol=pos.symbol, stop_loss=nan_to_none(pos.stop_loss),
                   take_profit=nan_to_none(pos.take_profit))
    else:
        out.update({k: v for k, v in to_record(event).items() if k not in out})
    return out


def event_line(event: Event) -> str:
    """One readable line per event."""
    head = f"{fmt.iso(event.ts)} [{event.run_id}]"
    if isinstance(event, TradeOpened):
        p = event.position
        levels = (f" SL {fmt.number(nan_to_none(p.stop_loss))}"
                  f" TP {fmt.number(nan_to_none(p.take_profit))}")
        return (f"{head} opened {p.side} {p.size:.6g} {p.symbol} @ {fmt.number(p.entry_price)}"
                f"{levels} (fee {fmt.number(p.entry_fee)})")
    if isinstance(event, TradeClosed):
        t = event.trade
        note = " (settled on recovery)" if t.settled_on_recovery else ""
        return (f"{head} closed {t.side} #{t.id} {t.symbol} @ {fmt.number(t.exit_price)} "
                f"{t.exit_reason}: pnl {fmt.number(t.pnl)} ({fmt.pct(t.pnl_pct)}){note}")
    if isinstance(event, RunStarted):
        verb = "resumed" if event.resumed else "started"
        return (f"{head} run {verb}: {event.strategy} {event.symbol} {event.timeframe} on "
                f"{event.exchange}, balance {fmt.number(event.balance)}")
    if isinstance(event, RunStopped):
        return f"{head} run stopped ({event.reason}), equity {fmt.number(event.equity)}"
    if isinstance(event, SignalRejected):
        return f"{head} signal {event.action} rejected: {event.reason}"
    if isinstance(event, FeedLost):
        return f"{head} feed lost ({event.exchange}): {event.detail}"
    if isinstance(event, FeedRestored):
        return f"{head} feed restored ({event.exchange}), {event.backfilled} candles backfilled"
    if isinstance(event, EngineError):
        return f"{head} {'FATAL ' if event.fatal else ''}error: {event.message}"
    if isinstance(event, GuardTripped):
        return f"{head} guard tripped: {event.reason}"
    if isinstance(event, GuardLifted):
        return f"{head} guard lifted: {event.guard}, entries allowed again"
    if isinstance(event, DailySummary):
        return (f"{head} daily: equity {fmt.number(event.equity)}, realised "
                f"{fmt.number(event.realised_pnl)}, {event.open_positions} open, "
                f"{event.trades_today} trades today")
    return f"{head} {event_name(event)}"


async def _print_events(queue: asyncio.Queue, as_json: bool) -> None:
    while True:
        event = await queue.get()
        text = json.dumps(event_json(event)) if as_json else event_line(event)
        print(text, flush=True)


# ---- commands ------------------------------------------------------------------------------------
def forward(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot forward``: resume stored runs, maybe start one, run until a signal.

    Raises:
        ServiceError: an empty ``--strategy`` or ``--symbol``, options of a new run without
            ``--strategy``, a bad ``--param``, ``--protect`` or ``--balance`` (checked before
            the runtime starts), or whatever ``ForwardEngine.start_run`` refuses.
    """
    spec = None
    if args.strategy is not None:
        if not args.strategy.strip():
            raise ServiceError("--strategy is empty: give a strategy name (see paperbot "
                               "strategies), or leave --strategy out to only resume runs")
        if args.symbol is None or not args.symbol.strip():
            raise ServiceError("--symbol is required with --strategy, e.g. --symbol BTC/USDT "
                               "(spot) or BTC/USDT:USDT (perpetual)")
        try:
            params = parse_param_pairs(args.param)
            if args.balance is not None:
                check_balance(args.balance, "--balance")
        except ValueError as exc:  # a ParamError or a balance out of range
            raise ServiceError(str(exc)) from None
        spec = RunSpec(strategy=args.strategy.strip(), symbol=args.symbol,
                       timeframe=args.timeframe, exchange=args.exchange, balance=args.balance,
                       params=params, started_by="cli", protect=protect_pairs(args.protect))
    else:
        given = [flag for flag, value in (("--symbol", args.symbol),
                                          ("--timeframe", args.timeframe),
                                          ("--exchange", args.exchange),
                                          ("--balance", args.balance)) if value is not None]
        given += ["--param"] if args.param else []
        given += ["--protect"] if args.protect else []
        if given:
            raise ServiceError(f"{', '.join(given)} only apply to a new run: add --strategy "
                               "NAME (without it paperbot forward only resumes stored runs)")
    return asyncio.run(_serve(settings, spec, args.json_events))


async def _serve(settings: Settings, spec: RunSpec | None, as_json: bool) -> int:
    limit_heap_fragmentation()  # an always-on process: keep its RSS flat
    async with Runtime(settings) as runtime:
        assert runtime.engine is not None and runtime.service is not None
        printer = asyncio.create_task(_print_events(runtime.bus.subscribe(), as_json))
        stopper = asyncio.create_task(wait_for_stop())  # SIGTERM works from here on
        try:
            resuming = asyncio.create_task(runtime.engine.resume_all())
            await asyncio.wait({resuming, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not stopper.done():
                resumed = resuming.result()
                waiting = len(runtime.engine.waiting)
                if waiting:
                    print(f"{waiting} of {len(resumed)} runs cannot resume yet (the reasons "
                          "are above); they are retried by themselves", file=sys.stderr)
                if spec is not None:
                    await runtime.service.start_run(spec)
                elif not resumed:
                    print("no runs to resume; start one with --strategy and --symbol",
                          file=sys.stderr)
                await stopper
        finally:
            stopper.cancel()
            resuming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await resuming
    await asyncio.sleep(0)  # let the printer see the shutdown events
    printer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await printer
    return 0


async def _with_store(settings: Settings, job: Callable[[PaperService], Any]) -> Any:
    if not Path(settings.db_path).exists():
        raise ServiceError(f"no run database at {settings.db_path}; start a run with "
                           "paperbot forward or set PAPERBOT_DB_PATH / --db")
    store = await Store.open(settings.db_path, create=False)
    try:
        return await job(PaperService(settings, store=store))
    finally:
        await store.close()


def list_runs(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot runs``."""
    views = asyncio.run(_with_store(settings, lambda s: s.runs()))
    if args.json:
        print(json.dumps([{
            "id": v.id, "status": v.status, "strategy": v.strategy, "symbol": v.symbol,
            "timeframe": v.timeframe, "exchange": v.exchange, "equity": v.equity,
            "balance": v.balance, "return_pct": v.return_pct,
            "open_positions": v.open_positions, "trades": v.trades, "created_at": v.created_at,
            "params": v.params, "protections": v.protections, "locks": list(v.locks)}
            for v in views]))
        return 0
    if not views:
        print("no runs")
    for v in views:
        print(f"{v.id}  {v.status:<8} {v.strategy:<18} {v.symbol:<14} {v.timeframe:<4} "
              f"{v.exchange:<8} equity {fmt.number(v.equity):>12} ({fmt.pct(v.return_pct)})  "
              f"open {v.open_positions}  trades {v.trades}  since {fmt.iso(v.created_at)}")
        if v.protections:
            print(f"        protections: {Protections.from_dict(v.protections).text()}")
        for reason in v.locks:
            print(f"        ⛔ {reason}")
    return 0


def list_trades(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot trades RUN [--exits] [--json]``: one trade per position (its parts
    listed under it), or with ``--exits`` every fill that reduced a position."""

    async def load(service: PaperService) -> tuple[list, list]:
        return await service.trades(args.run), await service.exits(args.run)

    trades, exits = asyncio.run(_with_store(settings, load))
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
        print(f"#{t.id:<4} {t.side:<5} {fmt.iso(t.entry_time)} → {fmt.iso(t.exit_time)}  "
              f"{fmt.number(t.entry_price)} → {fmt.number(t.exit_price)}  size {t.size:.6g}  "
              f"pnl {fmt.number(t.pnl):>10}  fees {fmt.number(t.fees)}  {t.exit_reason}")
        mine = parts.get(t.id, [])
        if len(mine) > 1:  # left in parts: show each
            for e in mine:
                print(f"        {fmt.iso(e.time)}  {e.reason:<13} {e.size:.6g} @ "
                      f"{fmt.number(e.price)}  pnl {fmt.number(e.pnl)}")
    return 0
