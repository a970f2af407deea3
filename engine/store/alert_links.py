"""Where the bot posted what: the trade-opened alert of each position and each run's thread.

The alert of an open position carries Close/Chart buttons; once the position closes the bot
edits that message to disable them, so it must find the message again, after a restart too.
With ``PAPERBOT_THREAD_PER_RUN`` a run's alerts go to its own thread, created once. Ids are
Discord snowflakes.
"""

from __future__ import annotations

from engine.store.store import Store


async def remember_alert(store: Store, run_id: str, position_id: int, channel_id: int,
                         message_id: int) -> None:
    """Record the trade-opened alert message of ``position_id``."""
    async with store.write_lock:
        await store.db.execute(
            "INSERT OR REPLACE INTO alert_messages (run_id, position_id, channel_id, "
            "message_id) VALUES (?, ?, ?, ?)", (run_id, position_id, channel_id, message_id))


async def alert_of(store: Store, run_id: str, position_id: int) -> tuple[int, int] | None:
    """``(channel_id, message_id)`` of the position's trade-opened alert, if one was posted."""
    async with store.db.execute(
            "SELECT channel_id, message_id FROM alert_messages WHERE run_id=? AND "
            "position_id=?", (run_id, position_id)) as cur:
        row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else None


async def forget_alert(store: Store, run_id: str, position_id: int) -> None:
    """The position closed and its alert was updated: nothing more to find."""
    async with store.write_lock:
        await store.db.execute("DELETE FROM alert_messages WHERE run_id=? AND position_id=?",
                               (run_id, position_id))


async def run_thread(store: Store, run_id: str) -> tuple[int, int] | None:
    """``(parent channel id, thread id)`` of the run's alert thread, if one was created."""
    async with store.db.execute("SELECT channel_id, thread_id FROM run_threads WHERE run_id=?",
                                (run_id,)) as cur:
        row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else None


async def set_run_thread(store: Store, run_id: str, channel_id: int, thread_id: int) -> None:
    """Record the run's alert thread."""
    async with store.write_lock:
        await store.db.execute(
            "INSERT OR REPLACE INTO run_threads (run_id, channel_id, thread_id) "
            "VALUES (?, ?, ?)", (run_id, channel_id, thread_id))
