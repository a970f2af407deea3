"""``paperbot forward``: forward runs from the terminal (reading them: ``engine.cli.runs_cmd``)."""

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
from engine.cli import runs_cmd
from engine.cli.backtest_cmd import add_leverage_option, add_protect_option, protect_pairs
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
from engine.forward.spec import check_spec
from engine.limits import check_balance
from engine.reporting import trade_dict
from engine.runtime import Runtime, wait_for_stop
from engine.settings import Settings
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
    add_leverage_option(fw)
    fw.add_argument("--db", type=Path, help="run database (PAPERBOT_DB_PATH)")
    fw.add_argument("--json-events", action="store_true", help="one JSON object per event")
    add_common(fw)
    fw.set_defaults(handler=forward)

    runs_cmd.add_parsers(sub, add_common)


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
        if pos.liquidation_price == pos.liquidation_price:
            out["liquidation_price"] = pos.liquidation_price
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
        if p.liquidation_price == p.liquidation_price:  # leveraged: where it is liquidated
            levels += f" liquidation {fmt.number(p.liquidation_price)}"
        return (f"{head} opened {p.side} {p.size:.6g} {p.symbol} @ {fmt.number(p.entry_price)}"
                f"{levels} (fee {fmt.number(p.entry_fee)})")
    if isinstance(event, TradeClosed):
        t = event.trade
        note = " (settled on recovery)" if t.settled_on_recovery else ""
        funding = f", funding {fmt.number(t.funding)}" if t.on_perpetual else ""
        return (f"{head} closed {t.side} #{t.id} {t.symbol} @ {fmt.number(t.exit_price)} "
                f"{t.exit_reason}: pnl {fmt.number(t.pnl)} ({fmt.pct(t.pnl_pct)}){funding}"
                f"{note}")
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
            ``--strategy``, a bad ``--param``, ``--protect``, ``--balance`` or ``--leverage``
            (checked before the runtime starts), or whatever ``ForwardEngine.start_run``
            refuses.
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
                       params=params, started_by="cli", protect=protect_pairs(args.protect),
                       leverage=args.leverage)
        check_spec(settings, spec)  # what the bot checks before it answers: refused at once
    else:
        given = [flag for flag, value in (("--symbol", args.symbol),
                                          ("--timeframe", args.timeframe),
                                          ("--exchange", args.exchange),
                                          ("--balance", args.balance),
                                          ("--leverage", args.leverage)) if value is not None]
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
