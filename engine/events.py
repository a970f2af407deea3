"""Events: the only way state leaves the engine.

Immutable records with an ``ts`` in ms UTC. The core step emits trade and rejection events; the
forward runner adds lifecycle, feed and summary events. The store, the bot's alerts and the
CLI subscribe to them; nothing in ``engine/`` knows who listens.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from engine.types import Exit, Position, Trade, none_to_nan


@dataclass(frozen=True, slots=True)
class TradeOpened:
    """A position was opened. ``position`` is a snapshot; prices quote, size base units."""

    run_id: str
    ts: int
    position: Position
    strategy: str = ""
    timeframe: str = ""


@dataclass(frozen=True, slots=True)
class TradeClosed:
    """A position was closed; ``trade.pnl`` is net of both fees (quote currency).

    ``trade.settled_on_recovery`` is True when the exit happened while the service was down
    and was settled at the candle where it happened, on catching up.
    """

    run_id: str
    ts: int
    trade: Trade
    strategy: str = ""
    timeframe: str = ""
    exit: Exit | None = None  # the final part (the trade sums every part)


@dataclass(frozen=True, slots=True)
class PositionUpdated:
    """The fixed levels of an open position were moved (``nan``: none), by ``"strategy"`` (a
    ``Signal.update``) or ``"user"`` (``/position``, the break-even button); in force from the
    next candle. ``note`` says why (e.g. ``"break-even"``); ``trailing_stop`` is the trailing
    level in force (``nan`` when off). Prices in quote currency."""

    run_id: str
    ts: int
    position_id: int
    symbol: str
    side: str
    stop_loss: float
    take_profit: float
    trailing_stop: float
    by: str
    note: str = ""
    entry_price: float = math.nan


@dataclass(frozen=True, slots=True)
class PositionReduced:
    """Part of a position left (a scale-out level, a partial close); ``remaining`` base units
    stay open out of ``initial_size``. ``exit.pnl`` is the part's net PnL (quote)."""

    run_id: str
    ts: int
    exit: Exit
    symbol: str
    side: str
    remaining: float
    initial_size: float
    settled_on_recovery: bool = False


@dataclass(frozen=True, slots=True)
class SignalRejected:
    """The broker refused a signal (e.g. not enough free margin); nothing was filled."""

    run_id: str
    ts: int
    action: str
    reason: str


@dataclass(frozen=True, slots=True)
class GuardTripped:
    """A risk guard started refusing entries (``engine.risk``): ``guard`` is the protection's
    name, ``reason`` the one line naming it and when it lifts, ``until`` the close time (ms UTC)
    from which entries are allowed again (None: when a condition is met). Emitted once per
    trip, not per refused signal."""

    run_id: str
    ts: int
    guard: str
    reason: str
    until: int | None = None


@dataclass(frozen=True, slots=True)
class GuardLifted:
    """A risk guard that had tripped allows entries again (at the close ``ts``, ms UTC)."""

    run_id: str
    ts: int
    guard: str


@dataclass(frozen=True, slots=True)
class RunStarted:
    """A forward run started or resumed (``resumed`` True after a restart)."""

    run_id: str
    ts: int
    strategy: str
    symbol: str
    timeframe: str
    exchange: str
    balance: float
    resumed: bool = False
    channel_id: int | None = None
    down_since: int | None = None  # resumed: close time (ms UTC) of the last candle before


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """A resumed run settled what happened while paperbot was away (one alert, not one per
    trade): ``away_ms`` from the last candle processed before the outage to the restart,
    ``candles`` processed while catching up, the trades it closed and the positions it opened
    (snapshots; money in quote currency), and how many signals were rejected."""

    run_id: str
    ts: int
    away_ms: int
    candles: int
    closed: tuple[Trade, ...] = ()
    opened: tuple[Position, ...] = ()
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class RunStopped:
    """A forward run stopped: ``reason`` is ``"user"``, ``"shutdown"`` or ``"error"``."""

    run_id: str
    ts: int
    reason: str
    equity: float


@dataclass(frozen=True, slots=True)
class RunPaused:
    """A run stopped taking entries; its positions' exits are still managed (DESIGN §4c).

    ``by`` is who paused it (``discord:<id>``, ``cli``, ``engine`` for a strategy error or the
    kill switch); ``reason`` says why (for a strategy error: the error's first line with the
    strategy file and line). ``/forward resume`` lifts it.
    """

    run_id: str
    ts: int
    reason: str
    by: str
    error: bool = False


@dataclass(frozen=True, slots=True)
class FeedLost:
    """The live feed for a run went silent or disconnected."""

    run_id: str
    ts: int
    exchange: str
    detail: str


@dataclass(frozen=True, slots=True)
class FeedRestored:
    """The live feed is back; ``backfilled`` candles were fetched to close the gap."""

    run_id: str
    ts: int
    exchange: str
    backfilled: int


@dataclass(frozen=True, slots=True)
class EngineError:
    """Something failed inside a run; the run keeps going unless ``fatal``."""

    run_id: str
    ts: int
    message: str
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class StorageUnavailable:
    """Writes to the run database have failed for a while (locked, disk full, I/O error).

    Runs hold their next candle and retry; nothing is lost or skipped. Not stored (the database
    is what fails): published to live subscribers only. ``run_id`` is ``""`` (every run);
    ``since`` is when the first write failed, ms UTC.
    """

    run_id: str
    ts: int
    detail: str
    since: int


@dataclass(frozen=True, slots=True)
class StorageRestored:
    """Writes succeed again after ``down_ms`` ms; runs carried on where they stopped."""

    run_id: str
    ts: int
    down_ms: int


@dataclass(frozen=True, slots=True)
class DailySummary:
    """Once a day per run: equity and activity (money in quote currency)."""

    run_id: str
    ts: int
    equity: float
    balance: float
    realised_pnl: float
    unrealised_pnl: float
    open_positions: int
    trades_today: int


Event = (TradeOpened | TradeClosed | SignalRejected | RunStarted | RunStopped | FeedLost
         | FeedRestored | EngineError | DailySummary | CaughtUp | StorageUnavailable
         | StorageRestored | PositionUpdated | PositionReduced | RunPaused | GuardTripped
         | GuardLifted)

#: Events that are published but never stored (they report on the storage itself).
VOLATILE: tuple[type, ...] = (StorageUnavailable, StorageRestored)


EVENT_TYPES: dict[str, type] = {
    "trade_opened": TradeOpened, "trade_closed": TradeClosed,
    "signal_rejected": SignalRejected, "run_started": RunStarted, "run_stopped": RunStopped,
    "feed_lost": FeedLost, "feed_restored": FeedRestored, "error": EngineError,
    "daily_summary": DailySummary, "caught_up": CaughtUp,
    "position_updated": PositionUpdated, "position_reduced": PositionReduced,
    "run_paused": RunPaused,
    "storage_unavailable": StorageUnavailable, "storage_restored": StorageRestored,
    "guard_tripped": GuardTripped, "guard_lifted": GuardLifted,
}
_NAMES = {cls: name for name, cls in EVENT_TYPES.items()}


def event_name(event: Event) -> str:
    """The event's type name, e.g. ``"trade_closed"``."""
    return _NAMES[type(event)]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_record(event: Event) -> dict[str, Any]:
    """JSON-ready dict of ``event`` with its ``type``; ``nan`` levels become None."""
    return {"type": event_name(event), **_plain(asdict(event))}


def from_record(record: dict[str, Any]) -> Event:
    """Rebuild an event from ``to_record``'s output (e.g. read back from the store).

    Raises:
        KeyError: for an unknown event type.
    """
    fields = dict(record)
    cls = EVENT_TYPES[fields.pop("type")]
    if "position" in fields:
        fields["position"] = Position(**_levels(fields["position"]))
    if "trade" in fields:
        fields["trade"] = Trade(**_levels(fields["trade"]))
    if fields.get("exit") is not None:
        fields["exit"] = Exit(**fields["exit"])
    if cls is PositionUpdated:
        for key in ("stop_loss", "take_profit", "trailing_stop", "entry_price"):
            fields[key] = none_to_nan(fields.get(key))
    if cls is CaughtUp:
        fields["closed"] = tuple(Trade(**_levels(t)) for t in fields.get("closed", ()))
        fields["opened"] = tuple(Position(**_levels(p)) for p in fields.get("opened", ()))
    return cls(**fields)


def _levels(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for key in ("stop_loss", "take_profit", "trailing_stop", "trailing_stop_pct",
                "active_stop", "initial_size", "best_price", "liquidation_price"):
        if key in out:
            out[key] = none_to_nan(out.get(key))
    return out
