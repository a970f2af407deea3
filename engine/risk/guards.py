"""``Guards``: the guards of one run, consulted by the core step.

The core calls ``on_exit`` for every fill that leaves a position, ``on_close`` once per base
candle (after its exits, before the strategy), and ``check_entry`` before each entry. Guards
are consulted in ``engine.risk.config.NAMES`` order; a refused entry is counted for the first
guard that refuses it. ``transitions`` reports which guards tripped or lifted since it was last
asked (forward runs turn these into one alert each), and ``to_state``/``from_state`` carry
everything across a restart.
"""

from __future__ import annotations

from typing import Any

from engine.events import GuardLifted, GuardTripped
from engine.risk.config import Protections
from engine.risk.cooldown import Cooldown
from engine.risk.daily_loss_limit import DailyLossLimit
from engine.risk.lock import Guard, Lock
from engine.risk.max_drawdown import MaxDrawdown
from engine.risk.max_open_positions import MaxOpenPositions
from engine.risk.stoploss_guard import StoplossGuard


class Guards:
    """The state of every guard a run has.

    Args:
        protections: which guards, with their values.
        candle_ms: the run's base candle length, ms.
    """

    def __init__(self, protections: Protections, candle_ms: int) -> None:
        p = protections
        guards: list[Guard] = []
        if p.max_drawdown_pct is not None:
            guards.append(MaxDrawdown(candle_ms, p.max_drawdown_pct, p.max_drawdown_flatten))
        if p.daily_loss_limit_pct is not None:
            guards.append(DailyLossLimit(candle_ms, p.daily_loss_limit_pct))
        if p.stoploss_guard is not None:
            guards.append(StoplossGuard(candle_ms, *p.stoploss_guard))
        if p.cooldown is not None:
            guards.append(Cooldown(candle_ms, p.cooldown))
        if p.max_open_positions is not None:
            guards.append(MaxOpenPositions(candle_ms, p.max_open_positions))
        self.guards = guards
        #: entries refused per guard name (every guard the run has, 0 when none)
        self.blocks: dict[str, int] = {g.name: 0 for g in guards}
        self._reported: dict[str, bool] = {g.name: False for g in guards}

    @classmethod
    def build(cls, protections: Protections | None, candle_ms: int) -> Guards | None:
        """``Guards`` when at least one guard is on, else None (the core skips the checks)."""
        if protections is None or not protections.any:
            return None
        return cls(protections, candle_ms)

    # ---- notifications from the core step ------------------------------------------------------
    def on_exit(self, close_ts: int, reason: str) -> None:
        """A fill with exit ``reason`` left a position in the base candle closing at
        ``close_ts`` (ms UTC)."""
        for guard in self.guards:
            guard.on_exit(close_ts, reason)

    def on_close(self, close_ts: int, equity: float, open_positions: int) -> bool:
        """The base candle closing at ``close_ts`` closed with ``equity`` (quote, after its
        exits, before its entries). Returns True when every position must be closed at market
        now (``max_drawdown_flatten``)."""
        flatten = False
        for guard in self.guards:
            flatten |= guard.on_close(close_ts, equity, open_positions)
        return flatten

    def check_entry(self, close_ts: int, open_positions: int) -> Lock | None:
        """The lock refusing an entry at the close ``close_ts`` (counted in ``blocks``), or
        None when the entry may go ahead."""
        for guard in self.guards:
            lock = guard.blocking(close_ts, open_positions)
            if lock is not None:
                self.blocks[guard.name] += 1
                return lock
        return None

    # ---- reading -------------------------------------------------------------------------------
    def active(self) -> list[Lock]:
        """The locks in force now (as of the last close processed)."""
        return [g.lock for g in self.guards if g.lock is not None]

    @staticmethod
    def stored_locks(state: dict[str, Any]) -> list[Lock]:
        """The locks in force in a stored ``to_state`` (a run that is not live)."""
        return [lock for saved in state.get("guards", {}).values()
                if (lock := Lock.from_state(saved.get("lock"))) is not None]

    def transitions(self) -> list[tuple[str, Lock | None]]:
        """``(guard, lock)`` for each guard that tripped (a lock) or lifted (None) since the
        last call; a lock extended while in force is no new trip."""
        out: list[tuple[str, Lock | None]] = []
        for guard in self.guards:
            locked = guard.lock is not None
            if locked != self._reported[guard.name]:
                self._reported[guard.name] = locked
                out.append((guard.name, guard.lock))
        return out

    def events(self, run_id: str, ts: int) -> list[GuardTripped | GuardLifted]:
        """``transitions`` as events at the close ``ts`` (ms UTC) of run ``run_id``."""
        return [GuardTripped(run_id, ts, name, lock.reason, lock.until) if lock is not None
                else GuardLifted(run_id, ts, name) for name, lock in self.transitions()]

    def reannounce(self) -> None:
        """Forget what was reported: the next ``transitions`` reports every lock in force as
        a trip (after a catch-up whose alerts were summarised, not posted one by one)."""
        for name in self._reported:
            self._reported[name] = False

    # ---- persistence -----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """JSON-ready state of every guard, the block counts and what was reported."""
        return {"guards": {g.name: g.to_state() for g in self.guards},
                "blocks": dict(self.blocks), "reported": dict(self._reported)}

    def from_state(self, state: dict[str, Any]) -> None:
        """Restore ``to_state``'s output; guards missing from it (added since) start fresh,
        entries of guards the run no longer has are ignored."""
        saved = state.get("guards", {})
        for guard in self.guards:
            if guard.name in saved:
                guard.from_state(saved[guard.name])
        for name in self.blocks:
            self.blocks[name] = int(state.get("blocks", {}).get(name, 0))
            self._reported[name] = bool(state.get("reported", {}).get(name, False))
