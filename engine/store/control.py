"""The command queue and the audit log of the run database.

A running service holds the database (one instance per database, ``engine.store.lock``), so
the CLI reaches it through ``commands``: ``paperbot pause|resume|panic`` inserts a row, the
service carries it out (``engine.forward.commands``) and writes the outcome, which the CLI
waits for. The audit log is read here for ``/audit`` and ``paperbot audit``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.store.store import Store, now_ms


@dataclass(frozen=True, slots=True)
class Command:
    """A queued command: ``action`` with ``args``, who asked (``actor``), and once carried out
    ``done_at`` (ms UTC), ``ok`` and the one-line ``result``."""

    id: int
    created_at: int
    actor: str
    action: str
    args: dict[str, Any]
    done_at: int | None
    ok: bool | None
    result: str | None


@dataclass(frozen=True, slots=True)
class AuditRow:
    """Who did what: ``ts`` (ms UTC), ``actor`` (``discord:<id>``, ``cli``, ``engine``),
    ``action`` (``run_start``, ``run_paused``, ``fill_close``, ``refused``…), the run if any,
    and the details (JSON object)."""

    id: int
    ts: int
    run_id: str | None
    actor: str
    action: str
    detail: dict[str, Any]


def _command(row: Any) -> Command:
    ok = row["ok"]
    return Command(row["id"], row["created_at"], row["actor"], row["action"],
                   json.loads(row["args"]), row["done_at"], None if ok is None else bool(ok),
                   row["result"])


async def add_command(store: Store, actor: str, action: str, args: dict[str, Any]) -> int:
    """Queue a command; returns its id."""
    async with store.write_lock:
        cur = await store.db.execute(
            "INSERT INTO commands (created_at, actor, action, args) VALUES (?, ?, ?, ?)",
            (now_ms(), actor, action, json.dumps(args)))
        return int(cur.lastrowid or 0)


async def pending_commands(store: Store) -> list[Command]:
    """Commands not carried out yet, oldest first."""
    async with store.db.execute("SELECT * FROM commands WHERE done_at IS NULL ORDER BY id") \
            as cur:
        return [_command(r) for r in await cur.fetchall()]


async def command(store: Store, command_id: int) -> Command | None:
    """One command, or None."""
    async with store.db.execute("SELECT * FROM commands WHERE id=?", (command_id,)) as cur:
        row = await cur.fetchone()
    return None if row is None else _command(row)


async def finish_command(store: Store, command_id: int, ok: bool, result: str) -> None:
    """Record the outcome of a command."""
    async with store.write_lock:
        await store.db.execute("UPDATE commands SET done_at=?, ok=?, result=? WHERE id=?",
                               (now_ms(), int(ok), result, command_id))


async def audit_log(store: Store, run_id: str | None = None, limit: int = 25,
                    actions: tuple[str, ...] = ()) -> list[AuditRow]:
    """The newest ``limit`` audit rows (of one run, of some actions), newest first."""
    sql, args = "SELECT * FROM audit", []
    where = []
    if run_id is not None:
        where.append("run_id=?")
        args.append(run_id)
    if actions:
        where.append(f"action IN ({', '.join('?' * len(actions))})")
        args += list(actions)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    async with store.db.execute(sql, args) as cur:
        rows = await cur.fetchall()
    return [AuditRow(r["id"], r["ts"], r["run_id"], r["actor"], r["action"],
                     json.loads(r["detail"] or "{}")) for r in rows]
