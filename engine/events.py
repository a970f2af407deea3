"""Events: the only way state leaves the engine.

Immutable records with an ``ts`` in ms UTC. The core step emits trade and rejection events; the
forward runner adds lifecycle, feed and summary events. The store, the bot's alerts and the
CLI subscribe to them; nothing in ``engine/`` knows who listens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.types import Position, Trade


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


@dataclass(frozen=True, slots=True)
class SignalRejected:
    """The broker refused a signal (e.g. not enough free margin); nothing was filled."""

    run_id: str
    ts: int
    action: str
    reason: str


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


@dataclass(frozen=True, slots=True)
class RunStopped:
    """A forward run stopped: ``reason`` is ``"user"``, ``"shutdown"`` or ``"error"``."""

    run_id: str
    ts: int
    reason: str
    equity: float


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
    extra: dict[str, Any] = field(default_factory=dict)


Event = (TradeOpened | TradeClosed | SignalRejected | RunStarted | RunStopped | FeedLost
         | FeedRestored | EngineError | DailySummary)
