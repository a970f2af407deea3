"""Backtest history in the run database: each finished backtest with its request and results.

``/backtest history`` and ``paperbot backtests`` list them; a stored backtest can be posted
again (its charts when they are still on disk, else by running the stored request again).
The result is the ``backtest --json`` object without its trade list (``trades`` holds their
count): enough to rebuild the reply. Times ms UTC; money in quote currency.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.store.store import Store, now_ms


@dataclass(frozen=True, slots=True)
class StoredBacktest:
    """One stored backtest: ``request`` as given (strings), ``result`` the JSON object."""

    id: int
    created_at: int
    actor: str
    strategy: str
    symbol: str
    timeframe: str
    exchange: str
    request: dict[str, Any]
    result: dict[str, Any]
    out_dir: str | None


async def save_backtest(store: Store, actor: str, request: dict[str, Any],
                        result: dict[str, Any], out_dir: str | None) -> int:
    """Store one backtest; returns its id. ``result["trades"]`` is stored as a count."""
    data = dict(result)
    if isinstance(data.get("trades"), list):
        data["trades"] = len(data["trades"])
    async with store.write_lock:
        cur = await store.db.execute(
            "INSERT INTO backtests (created_at, actor, strategy, symbol, timeframe, exchange, "
            "request, result, out_dir) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now_ms(), actor, str(data.get("strategy", "")), str(data.get("symbol", "")),
             str(data.get("timeframe", "")), str(data.get("exchange", "")),
             json.dumps(request, default=str), json.dumps(data, default=str), out_dir))
        return int(cur.lastrowid or 0)


async def list_backtests(store: Store, limit: int = 10, offset: int = 0) -> list[StoredBacktest]:
    """The newest stored backtests first."""
    async with store.db.execute("SELECT * FROM backtests ORDER BY id DESC LIMIT ? OFFSET ?",
                                (limit, offset)) as cur:
        return [_row(r) for r in await cur.fetchall()]


async def get_backtest(store: Store, backtest_id: int) -> StoredBacktest | None:
    """The stored backtest ``backtest_id`` (None when there is none)."""
    async with store.db.execute("SELECT * FROM backtests WHERE id=?", (backtest_id,)) as cur:
        row = await cur.fetchone()
    return _row(row) if row is not None else None


async def count_backtests(store: Store) -> int:
    """How many backtests are stored."""
    async with store.db.execute("SELECT COUNT(*) FROM backtests") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


def _row(r: Any) -> StoredBacktest:
    return StoredBacktest(r["id"], r["created_at"], r["actor"], r["strategy"], r["symbol"],
                          r["timeframe"], r["exchange"], json.loads(r["request"]),
                          json.loads(r["result"]), r["out_dir"])
