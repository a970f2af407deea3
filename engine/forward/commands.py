"""Carrying out commands the CLI queued for this running service (``paperbot pause|resume|
panic``), once a second (a scheduler job; ``engine.store.control`` holds the queue).

Each command becomes one call of the application service, as if it came from Discord, with the
CLI as the actor; its outcome (one line) is written back for the waiting CLI.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from engine import formatting as fmt
from engine.errors import ServiceError
from engine.store.control import Command, finish_command, pending_commands

if TYPE_CHECKING:
    from engine.service import PaperService

log = logging.getLogger(__name__)

ACTIONS = ("pause", "resume", "panic")


async def execute(service: PaperService, command: Command) -> str:
    """Carry out one command; returns the one-line result.

    Raises:
        ServiceError: the command was refused (unknown run, wrong state…).
    """
    run = str(command.args.get("run", ""))
    if command.action == "pause":
        view = await service.pause_run(run, command.actor)
        return f"run {view.id} paused: no new entries, exits still managed"
    if command.action == "resume":
        view = await service.resume_run(run, command.actor)
        return f"run {view.id} resumed ({view.state})"
    if command.action == "panic":
        report = await service.panic(command.actor)
        return panic_line(report)
    raise ServiceError(f"unknown command {command.action!r}; one of {', '.join(ACTIONS)}")


def panic_line(report) -> str:  # type: ignore[no-untyped-def]
    """The kill switch's outcome in one line (the CLI prints the trades after it)."""
    failed = f"; could not close: {', '.join(report.failed)}" if report.failed else ""
    return (f"kill switch: {len(report.paused)} runs paused, {len(report.closed)} positions "
            f"closed, realised {fmt.number(report.realised_pnl)}{failed}")


async def process_commands(service: PaperService) -> int:
    """Carry out every pending command; returns how many were processed."""
    store = service.store
    if store is None:
        return 0
    done = 0
    for command in await pending_commands(store):
        try:
            result, ok = await execute(service, command), True
        except ServiceError as exc:
            result, ok = str(exc), False
        except Exception as exc:  # a bug: say so to the CLI, keep the service going
            log.exception("command %d (%s) failed", command.id, command.action)
            result, ok = f"failed: {type(exc).__name__}: {exc}", False
        await finish_command(store, command.id, ok, result)
        done += 1
    return done
