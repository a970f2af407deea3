"""What the run database stores, as types: a run (``RunRecord``), an event from the alert
outbox (``StoredEvent``) and what one processed candle changed (``StepWrite``, written in one
transaction by ``engine.store.store.Store.commit_step``). Money in quote currency, times ms UTC.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from engine.events import Event
from engine.store.perp_inputs import PerpWrite
from engine.types import Exit, Position, Trade

__all__ = ["RunRecord", "StepWrite", "StoredEvent", "now_ms", "run_from_row"]


def now_ms() -> int:
    """Wall-clock time, ms UTC."""
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as stored. Money in quote currency, times ms UTC."""

    id: str
    strategy: str
    params: dict[str, Any]
    symbol: str
    timeframe: str
    timeframes: list[str]
    exchange: str
    market_type: str
    starting_balance: float
    fee_bps: float
    maker_fee_bps: float
    slippage_bps: float
    leverage: float
    status: str
    channel_id: int | None
    started_by: str | None
    created_at: int
    updated_at: int
    stopped_at: int | None
    stop_reason: str | None
    history_start: int | None
    last_candle_ts: int | None
    balance: float
    next_position_id: int
    strategy_state: dict[str, Any]
    mark_price: float | None
    mark_ts: int | None
    #: the risk guards the run resolved at start (``engine.risk.Protections.to_dict``)
    protections: dict[str, Any] = field(default_factory=dict)
    #: the guards' state after the last candle (``engine.risk.Guards.to_state``)
    guard_state: dict[str, Any] = field(default_factory=dict)
    #: perpetuals at leverage > 1: the liquidation level's rate (``engine.perp.leverage``)
    maintenance_margin_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event from the outbox with its row id, delivery attempts and when it was stored
    (ms UTC; None for rows older than schema v2)."""

    id: int
    event: Event
    attempts: int
    created_at: int | None = None


@dataclass(slots=True)
class StepWrite:
    """What one processed candle (or a manual close) changed, written atomically."""

    run_id: str
    balance: float
    next_position_id: int
    strategy_state: dict[str, Any]
    last_candle_ts: int | None = None
    mark_price: float | None = None
    mark_ts: int | None = None
    opened: tuple[Position, ...] = ()
    closed: tuple[Trade, ...] = ()
    #: rows (``rows.position_row``) of every position still open: their levels, trailing
    #: state, remaining size and candles held change at each candle
    open_rows: tuple[tuple[Any, ...], ...] = ()
    #: every fill that reduced a position (partial or final), with its recovery flag
    exits: tuple[tuple[Exit, bool], ...] = ()
    equity: tuple[int, float, float] | None = None  # (ts, equity, balance)
    events: tuple[Event, ...] = ()
    actor: str = "engine"
    #: events stored as already delivered (summarised in one alert instead)
    quiet_events: tuple[Event, ...] = ()
    #: the run's rolling history window moved: its new first candle (ms UTC open time)
    history_start: int | None = None
    #: a status change written with this step (e.g. ``paused`` by a strategy error), and why
    status: str | None = None
    status_reason: str | None = None
    #: the risk guards' state (``engine.risk.Guards.to_state``); None: the run has none
    guard_state: dict[str, Any] | None = None
    #: perpetuals: what the step's candles saw of open interest and funding, and the
    #: funding settlements the run learnt (``engine.store.perp_inputs``)
    perp: PerpWrite | None = None


def run_from_row(row: Any) -> RunRecord:
    """A ``runs`` row (``sqlite3.Row``/``aiosqlite.Row``) as a ``RunRecord``."""
    values = dict(row)
    values["params"] = json.loads(values["params"])
    values["timeframes"] = json.loads(values["timeframes"])
    values["strategy_state"] = json.loads(values["strategy_state"])
    for key in ("protections", "guard_state"):
        values[key] = json.loads(values[key]) if values.get(key) else {}
    return RunRecord(**values)
