"""The run lifecycle (DESIGN §4c): pause, resume, stop without stranding positions, closes on
any run that holds positions, and the kill switch.

States: ``running`` (entries and exits), ``paused`` (exits only: stops, take-profits, trailing
stops, time exits and manual closes still work), ``stopped`` and ``failed``. A run never
strands a position: stopping one that holds positions either closes them first or pauses it
instead; a strategy that raises pauses its run (``ForwardRun._strategy_error``); a stopped or
failed run can be resumed; ``/close`` on a run that is not live brings it back, paused, to
close at a fresh price.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from engine.errors import ServiceError
from engine.events import RunStopped
from engine.forward.run import ForwardRun, StorageBusy
from engine.store.store import RunRecord, now_ms
from engine.types import Trade

if TYPE_CHECKING:
    from engine.forward.engine import ForwardEngine

LIVE_STATUSES = ("running", "paused")


@dataclass(frozen=True, slots=True)
class PanicReport:
    """What the kill switch did: the trades it closed (with their run ids), the runs it paused,
    and the runs it could not reach (run id → why). Money in quote currency."""

    closed: list[tuple[str, Trade]] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def realised_pnl(self) -> float:
        """Net PnL of the trades the kill switch closed."""
        return sum(trade.pnl for _, trade in self.closed)


async def record_of(engine: ForwardEngine, run_id: str) -> RunRecord:
    """The stored run.

    Raises:
        ServiceError: unknown run.
    """
    record = await engine.store.run(run_id)
    if record is None:
        raise ServiceError(f"unknown run {run_id!r}; see /forward list")
    return record


async def ensure_live(engine: ForwardEngine, run_id: str, actor: str) -> ForwardRun:
    """The live run ``run_id``; a run that is not live (stopped, failed, or from before a
    restart) is brought back paused — exits only — so its positions get a fresh price.

    Raises:
        ServiceError: unknown run, or the exchange cannot be reached to bring it back.
    """
    live = engine.runs.get(run_id)
    if live is not None:
        return live
    waiting = engine.waiting.get(run_id)
    if waiting is not None:
        raise ServiceError(f"run {run_id} is waiting for data ({waiting.error}); its positions "
                           "can be closed once the exchange is back")
    record = await record_of(engine, run_id)
    reason = record.stop_reason if record.status == "paused" else "brought back to close"
    if record.status != "paused":
        await engine.store.set_status(run_id, "paused", reason, actor)
    try:
        await engine.resume_record(replace(record, status="paused", stop_reason=reason))
    except Exception as exc:
        await engine.store.set_status(run_id, record.status, record.stop_reason, actor)
        raise ServiceError(f"run {run_id} could not be brought back to close its positions: "
                           f"{exc}") from None
    return engine.runs[run_id]


async def pause_run(engine: ForwardEngine, run_id: str, actor: str,
                    reason: str = "paused by user") -> RunRecord:
    """Stop taking entries; exits keep being managed.

    Raises:
        ServiceError: unknown run, or a run that is not running.
    """
    record = await record_of(engine, run_id)
    if record.status != "running":
        raise ServiceError(f"run {run_id} is {record.status}, not running")
    live = engine.runs.get(run_id)
    if live is None:  # waiting for data: it will resume paused
        await engine.store.set_status(run_id, "paused", reason, actor)
        if run_id in engine.waiting:
            engine.waiting[run_id].record = replace(record, status="paused", stop_reason=reason)
    else:
        await _guarded(live.pause(reason, actor))
    return await record_of(engine, run_id)


async def resume_run(engine: ForwardEngine, run_id: str, actor: str) -> RunRecord:
    """Take entries again: a paused run (also one paused by a strategy error, whose strategy is
    called again), or a stopped or failed run (rebuilt and caught up like after a restart).

    Raises:
        ServiceError: unknown run, or a run already running.
    """
    record = await record_of(engine, run_id)
    if record.status == "running":
        raise ServiceError(f"run {run_id} is already running")
    live = engine.runs.get(run_id)
    if live is not None:
        await _guarded(live.unpause(actor))
    else:
        await engine.store.set_status(run_id, "running", None, actor)
        waiting = engine.waiting.get(run_id)
        if waiting is not None:  # retrying already: it comes back running
            waiting.record = replace(record, status="running", stop_reason=None)
        else:
            await engine.resume_or_wait(replace(record, status="running", stop_reason=None))
    return await record_of(engine, run_id)


async def stop_run(engine: ForwardEngine, run_id: str, actor: str,
                   close_positions: bool | None = None) -> RunRecord:
    """Stop a run for good. A run holding positions needs a choice: ``close_positions=True``
    closes them at market first; False pauses the run instead (entries stop, exits go on).

    Raises:
        ServiceError: unknown or already stopped run; positions open and no choice made.
    """
    record = await record_of(engine, run_id)
    if record.status == "stopped":
        raise ServiceError(f"run {run_id} is already stopped")
    live = engine.runs.get(run_id)
    positions = live.portfolio.positions if live is not None else \
        await engine.store.positions(run_id)
    if positions and close_positions is None:
        raise ServiceError(f"run {run_id} holds {len(positions)} open position"
                           f"{'s' * (len(positions) != 1)}: stop and close them, or pause the "
                           "run to keep managing their exits")
    if positions and close_positions is False:
        if record.status == "paused":
            return record
        return await pause_run(engine, run_id, actor, "entries stopped; exits still managed")
    if positions:
        live = await ensure_live(engine, run_id, actor)
        await _guarded(live.close_all(actor))
    equity = record.balance
    live = engine.runs.get(run_id)
    if live is not None:
        await engine.detach(live)
        equity = live.portfolio.equity
    waiting = engine.waiting.pop(run_id, None)
    if waiting is not None and waiting.task is not None:
        waiting.task.cancel()
    event = RunStopped(run_id, now_ms(), "user", equity)
    await engine.store.set_status(run_id, "stopped", "stopped by user", actor, (event,))
    engine.bus.publish(event)
    return await record_of(engine, run_id)


async def close_position(engine: ForwardEngine, run_id: str, position_id: int,
                         actor: str) -> Trade:
    """Paper market exit of one position of any run that holds it.

    Raises:
        ServiceError: unknown run or position, or the run cannot be brought back.
    """
    record = await record_of(engine, run_id)
    live = engine.runs.get(run_id)
    if live is None:
        if not any(p.id == position_id for p in await engine.store.positions(run_id)):
            raise ServiceError(f"run {run_id} ({record.status}) has no open position "
                               f"#{position_id}")
        live = await ensure_live(engine, run_id, actor)
    trade = await _guarded(live.close_position(position_id, actor))
    if trade is None:
        ids = ", ".join(f"#{p.id}" for p in live.portfolio.positions) or "none"
        raise ServiceError(f"run {run_id} has no open position #{position_id}; open: {ids}")
    return trade


async def close_all(engine: ForwardEngine, run_id: str, actor: str) -> list[Trade]:
    """Paper market exit of every position of a run (``/close all``)."""
    record = await record_of(engine, run_id)
    live = engine.runs.get(run_id)
    if live is None and not await engine.store.positions(run_id):
        raise ServiceError(f"run {run_id} ({record.status}) holds no open position")
    live = live or await ensure_live(engine, run_id, actor)
    if not live.portfolio.positions:
        raise ServiceError(f"run {run_id} holds no open position")
    return await _guarded(live.close_all(actor))


async def panic(engine: ForwardEngine, actor: str) -> PanicReport:
    """The kill switch: pause every running run and close every open position at market."""
    report = PanicReport()
    for record in await engine.store.runs():
        try:
            if record.status == "running":
                await pause_run(engine, record.id, actor, "kill switch")
                report.paused.append(record.id)
            holds = engine.runs[record.id].portfolio.positions if record.id in engine.runs \
                else await engine.store.positions(record.id)
            if holds:
                live = await ensure_live(engine, record.id, actor)
                report.closed.extend((record.id, t) for t in
                                     await _guarded(live.close_all(actor)))
        except ServiceError as exc:
            report.failed[record.id] = str(exc)
    await engine.store.audit(None, actor, "panic", {
        "paused": report.paused, "closed": [(r, t.id) for r, t in report.closed],
        "pnl": report.realised_pnl, "failed": report.failed})
    return report


async def _guarded(call):  # type: ignore[no-untyped-def]
    """Await a run command; a storage outage becomes a one-line ServiceError."""
    try:
        return await call
    except StorageBusy as exc:
        raise ServiceError(str(exc)) from None
