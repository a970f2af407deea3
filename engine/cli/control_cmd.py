"""``paperbot pause|resume RUN``, ``paperbot panic`` and ``paperbot audit``: run control from
the terminal.

When a service holds the database (``python -m bot`` or ``paperbot forward``: one instance per
database), the command is queued for it (``engine.store.control``) and its outcome printed once
carried out (within a few seconds). With no service running it acts on the database itself:
``pause`` and ``resume`` change the stored status (a resumed run starts trading at the next
start); ``panic`` brings the runs up for a moment to close their positions at a fresh price.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from engine import formatting as fmt
from engine.cli.runs_cmd import with_store
from engine.errors import ServiceError
from engine.settings import Settings
from engine.store.control import add_command, audit_log, command
from engine.store.errors import InstanceLocked
from engine.store.lock import InstanceLock
from engine.store.store import Store

#: Seconds the CLI waits for a running service to carry out a queued command.
WAIT_S = 60.0


def add_parsers(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``pause``, ``resume``, ``panic`` and ``audit`` on the main parser."""
    for name, text in (("pause", "stop a run's entries; its exits keep being managed"),
                       ("resume", "take entries again (a paused, stopped or failed run)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run", help="run id")
        p.add_argument("--db", type=Path, help="run database (PAPERBOT_DB_PATH)")
        add_common(p)
        p.set_defaults(handler=control, action=name)
    p = sub.add_parser("panic", help="kill switch: pause every run, close every position")
    p.add_argument("--yes", action="store_true", help="do it (without: say what it would do)")
    p.add_argument("--db", type=Path, help="run database (PAPERBOT_DB_PATH)")
    add_common(p)
    p.set_defaults(handler=control, action="panic")
    p = sub.add_parser("audit", help="who did what: starts, stops, closes, refusals")
    p.add_argument("run", nargs="?", help="run id (default: every run)")
    p.add_argument("--limit", type=int, default=25, help="rows, newest first (default 25)")
    p.add_argument("--db", type=Path, help="run database (PAPERBOT_DB_PATH)")
    p.add_argument("--json", action="store_true")
    add_common(p)
    p.set_defaults(handler=audit)


def _need_db(settings: Settings) -> None:
    if not Path(settings.db_path).exists():
        raise ServiceError(f"no run database at {settings.db_path}; start a run with paperbot "
                           "forward or set PAPERBOT_DB_PATH / --db")


def control(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot pause|resume RUN`` and ``paperbot panic``."""
    _need_db(settings)
    if args.action == "panic" and not args.yes:
        return asyncio.run(_panic_preview(settings))
    run_args = {"run": args.run} if args.action != "panic" else {}
    try:
        lock = InstanceLock.acquire(settings.db_path)
    except InstanceLocked:  # a service runs: queue it for the service
        lock = None
    if lock is None:
        ok, text = asyncio.run(_queue(settings, args.action, run_args))
        if not ok:
            raise ServiceError(text)
        print(text)
        return 0
    try:
        text = asyncio.run(_direct(settings, args.action, args.run if run_args else None,
                                   lock))
    finally:
        lock.release()
    print(text)
    return 0


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[Store]:
    """The run database (never created), closed on the way out."""
    store = await Store.open(settings.db_path, create=False)
    try:
        yield store
    finally:
        await store.close()


async def _queue(settings: Settings, action: str, args: dict[str, Any]) -> tuple[bool, str]:
    async with _store(settings) as store:
        command_id = await add_command(store, "cli", action, args)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            found = await command(store, command_id)
            if found is not None and found.done_at is not None:
                return bool(found.ok), found.result or ""
            await asyncio.sleep(0.2)
    return False, (f"the running service did not carry out the {action} within {WAIT_S:.0f} s; "
                   "it stays queued")


async def _direct(settings: Settings, action: str, run_id: str | None,
                  lock: InstanceLock) -> str:
    """No service runs: act on the database (panic: through a short-lived runtime)."""
    if action == "panic":
        lock.release()  # the runtime takes it
        return await _panic_now(settings)
    async with _store(settings) as store:
        record = await store.run(run_id or "")
        if record is None:
            raise ServiceError(f"unknown run {run_id!r}; list them with paperbot runs")
        if action == "pause":
            if record.status != "running":
                raise ServiceError(f"run {record.id} is {record.status}, not running")
            await store.set_status(record.id, "paused", "paused by user", "cli")
            return (f"run {record.id} paused: it manages its exits only when paperbot runs "
                    "again")
        if record.status == "running":
            raise ServiceError(f"run {record.id} is already running")
        await store.set_status(record.id, "running", None, "cli")
        return f"run {record.id} marked running: it resumes when paperbot starts"


async def _panic_now(settings: Settings) -> str:
    from engine.forward.commands import panic_line
    from engine.runtime import Runtime

    async with Runtime(settings) as runtime:
        assert runtime.engine is not None and runtime.service is not None
        await runtime.engine.resume_all()
        report = await runtime.service.panic("cli")
    lines = [panic_line(report)]
    lines += [f"  {rid} #{t.id} {t.side} {t.symbol} @ {fmt.number(t.exit_price)} pnl "
              f"{fmt.number(t.pnl)}" for rid, t in report.closed]
    return "\n".join(lines)


async def _panic_preview(settings: Settings) -> int:
    running, positions = await with_store(settings, lambda service: service.panic_preview())
    print(f"paperbot panic would pause {running} running runs and close {positions} "
          f"open positions at market; run it again with --yes to do it")
    return 0


def audit(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot audit [RUN]``."""
    _need_db(settings)
    if not 1 <= args.limit <= 1000:
        raise ServiceError(f"--limit must be between 1 and 1000, got {args.limit}")

    async def read() -> list:
        async with _store(settings) as store:
            if args.run and await store.run(args.run) is None:
                raise ServiceError(f"unknown run {args.run!r}; list them with paperbot runs")
            return await audit_log(store, args.run, args.limit)

    rows = asyncio.run(read())
    if args.json:
        print(json.dumps([{"ts": r.ts, "run_id": r.run_id, "actor": r.actor,
                           "action": r.action, "detail": r.detail} for r in rows]))
        return 0
    if not rows:
        print("nothing recorded")
    for r in rows:
        detail = " ".join(f"{k}={v}" for k, v in r.detail.items() if v not in (None, ""))
        print(f"{fmt.iso(r.ts)}  {r.run_id or '-':<7} {r.actor:<28} {r.action:<16} {detail}")
    return 0
