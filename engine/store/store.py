"""Persistence of forward runs in SQLite (aiosqlite, WAL).

The one rule that makes restarts safe: everything a processed candle changes — fills (positions
opened, trades closed), balance, strategy state, the run's last processed candle, its equity
point, the events for the alert outbox and the audit rows — is written in **one transaction**
(``commit_step``). A crash before the commit loses the whole candle, which is processed again
after the restart; a crash after it loses nothing. Either way no fill is lost or doubled.

The stored types (``RunRecord``, ``StepWrite``, ``StoredEvent``) are in ``engine.store.records``
and importable from here as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

from engine.events import Event, PositionUpdated, event_name, from_record, to_record
from engine.store import checks, rows
from engine.store.perp_inputs import PerpWrite, write_perp
from engine.store.records import RunRecord, StepWrite, StoredEvent, now_ms, run_from_row
from engine.types import Exit, Position, Trade, nan_to_none

__all__ = ["RunRecord", "StepWrite", "Store", "StoredEvent", "now_ms"]

log = logging.getLogger(__name__)


class Store:
    """Async access to the run database. Use ``await Store.open(path)``; ``await close()``."""

    #: True when ``open`` created the database file (the CLI says so)
    created: bool = False

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        # one connection, many runs: writes take turns, so one run's transaction never
        # swallows (or is broken by) another's statements
        self.write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, *, create: bool = True) -> Store:
        """Open the database at ``path`` in WAL mode, checked (``engine.store.checks``) and
        migrated; create it when it does not exist and ``create`` is True.

        A new database is logged as one WARNING line and flagged by ``store.created``; it is
        refused when a ``-wal``/``-shm`` file or a backup beside it says the database went
        missing. ``PRAGMA quick_check`` reads every page of an existing database (O(size)).

        Raises:
            engine.store.errors.StorageError: one line naming the file and what to do: a
                directory, a folder that cannot be created or written, a missing database
                (``create=False``, or leftovers beside it), a read-only, non-SQLite,
                truncated, corrupt or locked file, or a schema from a newer paperbot
                (``engine.store.schema.SchemaError``, a ``StorageError``).
        """
        path = Path(path)
        db, created = await checks.connect(path, create=create)
        store = cls(db, path)
        store.created = created
        if created:
            log.warning("created a new run database at %s", path)
        return store

    async def close(self) -> None:
        """Close the connection (the last one checkpoints the WAL). Safe to call twice; a
        failure is logged in one line, not raised (the state is committed per candle)."""
        try:
            await self.db.close()
        except (sqlite3.Error, ValueError) as exc:
            log.warning("closing run database %s failed: %s", self.path, exc)

    async def integrity_check(self, quick: bool = False) -> str:
        """"ok" when healthy, else the first problem found by ``PRAGMA integrity_check`` (or
        the faster ``quick_check`` with ``quick``, which skips index-content checks).

        Raises:
            sqlite3.DatabaseError: damage so bad that SQLite cannot walk the pages.
        """
        return await checks.first_problem(self.db, "quick_check" if quick else "integrity_check")

    # ---- runs ----------------------------------------------------------------------------------
    async def create_run(self, run: RunRecord, actor: str) -> None:
        """Insert a new run and audit who started it."""
        values = {
            **{k: getattr(run, k) for k in RunRecord.__slots__},
            "params": json.dumps(run.params), "timeframes": json.dumps(run.timeframes),
            "strategy_state": json.dumps(run.strategy_state),
            "protections": json.dumps(run.protections),
            "guard_state": json.dumps(run.guard_state),
        }
        columns = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        async with self._tx():
            await self.db.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", values)
            await self._audit(run.created_at, run.id, actor, "run_start",
                              {"strategy": run.strategy, "symbol": run.symbol,
                               "timeframe": run.timeframe, "params": run.params})

    async def set_status(self, run_id: str, status: str, reason: str | None, actor: str,
                         events: tuple[Event, ...] = ()) -> None:
        """Change a run's status (``running``/``paused``/``stopped``/``failed``) with its
        reason, audited (``run_<status>``), atomically with ``events``."""
        ts = now_ms()
        async with self._tx():
            await self.db.execute(
                "UPDATE runs SET status=?, stop_reason=?, stopped_at=?, updated_at=? WHERE id=?",
                (status, reason, ts if status in ("stopped", "failed") else None, ts, run_id))
            await self._audit(ts, run_id, actor, f"run_{status}", {"reason": reason})
            await self._insert_events(events)


    async def run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        async with self.db.execute("SELECT * FROM runs WHERE id=?", (run_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else run_from_row(row)

    async def runs(self, status: str | tuple[str, ...] | None = None) -> list[RunRecord]:
        """Runs, newest first, optionally with one status (or any of several)."""
        wanted = (status,) if isinstance(status, str) else tuple(status or ())
        where = f" WHERE status IN ({', '.join('?' * len(wanted))})" if wanted else ""
        async with self.db.execute(f"SELECT * FROM runs{where} ORDER BY created_at DESC",
                                   wanted) as cur:
            return [run_from_row(row) for row in await cur.fetchall()]

    # ---- the step --------------------------------------------------------------------------------
    async def commit_step(self, step: StepWrite) -> None:
        """Write one candle's (or one command's) changes in a single transaction."""
        ts = now_ms()
        async with self._tx():
            sets = ["balance=:balance", "next_position_id=:next_id", "strategy_state=:state",
                    "updated_at=:ts"]
            args: dict[str, Any] = {"balance": step.balance, "next_id": step.next_position_id,
                                    "state": json.dumps(step.strategy_state), "ts": ts,
                                    "id": step.run_id}
            if step.last_candle_ts is not None:
                sets.append("last_candle_ts=:last")
                args["last"] = step.last_candle_ts
            if step.mark_price is not None:
                sets += ["mark_price=:mark", "mark_ts=:mark_ts"]
                args.update(mark=step.mark_price, mark_ts=step.mark_ts)
            if step.history_start is not None:
                sets.append("history_start=:history_start")
                args["history_start"] = step.history_start
            if step.status is not None:
                sets += ["status=:status", "stop_reason=:status_reason"]
                args.update(status=step.status, status_reason=step.status_reason)
                await self._audit(ts, step.run_id, step.actor, f"run_{step.status}",
                                  {"reason": step.status_reason})
            if step.guard_state is not None:
                sets.append("guard_state=:guard_state")
                args["guard_state"] = json.dumps(step.guard_state)
            await self.db.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id=:id", args)
            for pos in step.opened:
                await self._audit(ts, step.run_id, step.actor, "fill_open",
                                  {"position": pos.id, "side": pos.side, "size": pos.size,
                                   "price": pos.entry_price, "fee": pos.entry_fee})
            for trade in step.closed:
                await self.db.execute("DELETE FROM positions WHERE run_id=? AND id=?",
                                      (step.run_id, trade.id))
                await self.db.execute(rows.INSERT_TRADE, rows.trade_row(step.run_id, trade))
                await self._audit(ts, step.run_id, step.actor, "fill_close",
                                  {"position": trade.id, "reason": trade.exit_reason,
                                   "price": trade.exit_price, "pnl": trade.pnl})
            await self.db.executemany(rows.REPLACE_POSITION, step.open_rows)
            closed_ids = {t.id for t in step.closed}
            for exit_, settled in step.exits:
                await self.db.execute(rows.INSERT_EXIT, rows.exit_row(step.run_id, exit_, settled))
                if exit_.position_id not in closed_ids:
                    await self._audit(ts, step.run_id, step.actor, "fill_reduce",
                                      {"position": exit_.position_id, "reason": exit_.reason,
                                       "price": exit_.price, "size": exit_.size,
                                       "pnl": exit_.pnl})
            for event in step.events + step.quiet_events:
                if isinstance(event, PositionUpdated) and event.by == "user":
                    await self._audit(ts, step.run_id, step.actor, "position_update",
                                      {"position": event.position_id,
                                       "stop_loss": nan_to_none(event.stop_loss),
                                       "take_profit": nan_to_none(event.take_profit),
                                       "note": event.note})
            if step.equity is not None:
                await self.db.execute(
                    "INSERT OR REPLACE INTO equity (run_id, ts, equity, balance, kind) "
                    "VALUES (?, ?, ?, ?, 'candle')", (step.run_id, *step.equity))
            await self._insert_events(step.events)
            await self._insert_events(step.quiet_events, delivered=True)
            if step.perp is not None:
                await write_perp(self.db, step.perp)

    async def record_perp(self, write: PerpWrite) -> None:
        """Store what a run saw of open interest and funding outside a step (its warm-up)."""
        if write:
            async with self._tx():
                await write_perp(self.db, write)

    async def snapshot_equity(self, run_id: str, ts: int, equity: float, balance: float) -> None:
        """A periodic equity point between candles (at the last tick's price)."""
        async with self.write_lock:
            await self.db.execute(
                "INSERT OR REPLACE INTO equity (run_id, ts, equity, balance, kind) "
                "VALUES (?, ?, ?, ?, 'snapshot')", (run_id, ts, equity, balance))

    async def add_events(self, events: tuple[Event, ...]) -> None:
        """Store events that change no run state (feed lost/restored, errors, summaries)."""
        async with self._tx():
            await self._insert_events(events)

    async def audit(self, run_id: str | None, actor: str, action: str,
                    detail: dict[str, Any]) -> None:
        """Append one audit row (commands, refusals)."""
        async with self.write_lock:
            await self._audit(now_ms(), run_id, actor, action, detail)

    # ---- reads -----------------------------------------------------------------------------------
    async def positions(self, run_id: str) -> list[Position]:
        """Open positions of a run, by id."""
        async with self.db.execute("SELECT * FROM positions WHERE run_id=? ORDER BY id",
                                   (run_id,)) as cur:
            return [rows.position_from_row(r) for r in await cur.fetchall()]

    async def trades(self, run_id: str, limit: int | None = None) -> list[Trade]:
        """Closed trades of a run in exit order (the newest ``limit`` when given)."""
        sql = "SELECT * FROM trades WHERE run_id=? ORDER BY exit_time DESC, id DESC"
        args: tuple[Any, ...] = (run_id,)
        if limit is not None:
            sql += " LIMIT ?"
            args += (limit,)
        async with self.db.execute(sql, args) as cur:
            found = await cur.fetchall()
        return [rows.trade_from_row(r) for r in reversed(found)]

    async def exits(self, run_id: str, position_id: int | None = None) -> list[Exit]:
        """Every fill that reduced a position of a run (of one position), in fill order."""
        sql = "SELECT * FROM exits WHERE run_id=?"
        args: tuple[Any, ...] = (run_id,)
        if position_id is not None:
            sql += " AND position_id=?"
            args += (position_id,)
        async with self.db.execute(sql + " ORDER BY time, id", args) as cur:
            return [rows.exit_from_row(r) for r in await cur.fetchall()]

    async def equity_curve(self, run_id: str) -> list[tuple[int, float]]:
        """(ts, equity) points of a run, candle closes and snapshots, in time order."""
        async with self.db.execute("SELECT ts, equity FROM equity WHERE run_id=? ORDER BY ts",
                                   (run_id,)) as cur:
            return [(r[0], r[1]) for r in await cur.fetchall()]

    async def pending_events(self, limit: int = 100, max_attempts: int = 5) -> list[StoredEvent]:
        """Undelivered events, oldest first, that have not used up their attempts."""
        async with self.db.execute(
            "SELECT id, type, payload, attempts, created_at FROM events WHERE delivered_at IS "
            "NULL AND attempts < ? ORDER BY id LIMIT ?", (max_attempts, limit)) as cur:
            rows = await cur.fetchall()
        return [StoredEvent(r["id"], from_record({**json.loads(r["payload"]), "type": r["type"]}),
                            r["attempts"], r["created_at"]) for r in rows]

    async def mark_delivered(self, event_id: int) -> None:
        """The event reached its alert sink."""
        async with self.write_lock:
            await self.db.execute(
                "UPDATE events SET delivered_at=?, attempts=attempts+1 WHERE id=?",
                (now_ms(), event_id))

    async def mark_failed(self, event_id: int, error: str) -> None:
        """One delivery attempt failed (the event stays in the outbox)."""
        async with self.write_lock:
            await self.db.execute(
                "UPDATE events SET attempts=attempts+1, last_error=? WHERE id=?",
                (error, event_id))

    # ---- internals -------------------------------------------------------------------------------
    def _tx(self) -> _Transaction:
        return _Transaction(self.db, self.write_lock)

    async def _insert_events(self, events: tuple[Event, ...], delivered: bool = False) -> None:
        now = now_ms()
        for event in events:
            record = to_record(event)
            await self.db.execute(
                "INSERT INTO events (run_id, ts, type, payload, created_at, delivered_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (event.run_id, event.ts, event_name(event),
                 json.dumps({k: v for k, v in record.items() if k != "type"}), now,
                 now if delivered else None))

    async def _audit(self, ts: int, run_id: str | None, actor: str, action: str,
                     detail: dict[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO audit (ts, run_id, actor, action, detail) VALUES (?, ?, ?, ?, ?)",
            (ts, run_id, actor, action, json.dumps(detail, default=str)))


class _Transaction:
    """The write lock, then ``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any error)."""

    def __init__(self, db: aiosqlite.Connection, lock: asyncio.Lock) -> None:
        self.db = db
        self.lock = lock

    async def __aenter__(self) -> None:
        await self.lock.acquire()
        try:
            await self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                try:
                    await self.db.execute("COMMIT")
                except BaseException:
                    # e.g. disk full at commit: never leave the connection inside a transaction
                    with contextlib.suppress(Exception):
                        await self.db.execute("ROLLBACK")
                    raise
            else:
                with contextlib.suppress(Exception):  # keep the original error
                    await self.db.execute("ROLLBACK")
        finally:
            self.lock.release()
