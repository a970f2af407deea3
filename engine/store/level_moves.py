"""The history of a position's fixed levels, read back from the events a run stored.

A position's stop-loss and take-profit start where ``TradeOpened`` put them and change with
each ``PositionUpdated`` (a strategy's ``Signal.update``, ``/position``, the break-even button);
each change is in force from the candle after its ``ts``. Charts draw these steps. Prices in
quote currency (``nan``: no level), times ms UTC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiosqlite

from engine.types import none_to_nan


@dataclass(frozen=True, slots=True)
class LevelStep:
    """From ``ts`` on, the position's fixed ``stop_loss`` and ``take_profit`` (quote)."""

    ts: int
    stop_loss: float
    take_profit: float


async def level_steps(db: aiosqlite.Connection, run_id: str,
                      position_id: int) -> list[LevelStep]:
    """The opening levels of position ``position_id`` of run ``run_id`` and every move, in
    time order ([] when the run stored no events for it). Reads the events table (its
    ``position_updated`` and ``trade_opened`` rows of that run)."""
    sql = ("SELECT ts, type, payload FROM events WHERE run_id=? AND type IN "
           "('trade_opened', 'position_updated') ORDER BY ts, id")
    steps: list[LevelStep] = []
    async with db.execute(sql, (run_id,)) as cur:
        async for ts, kind, payload in cur:
            data = json.loads(payload)
            if kind == "trade_opened":
                pos = data.get("position") or {}
                if pos.get("id") == position_id:
                    steps.append(LevelStep(int(pos.get("entry_time", ts)),
                                           none_to_nan(pos.get("stop_loss")),
                                           none_to_nan(pos.get("take_profit"))))
            elif data.get("position_id") == position_id:
                steps.append(LevelStep(int(ts), none_to_nan(data.get("stop_loss")),
                                       none_to_nan(data.get("take_profit"))))
    return steps
