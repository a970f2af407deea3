"""The always-on process: store, forward engine, scheduler and service, and how they stop.

``Runtime`` owns the resources (``async with``). ``wait_for_stop`` installs SIGTERM/SIGINT
handlers that only record the signal (the uvicorn pattern); the main coroutine then leaves the
``async with`` block, which stops the scheduler, detaches every run (a candle being processed
finishes its transaction first), closes the websockets, REST sessions and the database. A second
SIGINT exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from types import TracebackType

from engine.forward.bus import EventBus
from engine.forward.engine import ForwardEngine
from engine.forward.schedule import build_scheduler
from engine.service import PaperService
from engine.settings import Settings
from engine.store.store import Store
from engine.workers import JobPool

log = logging.getLogger(__name__)

#: Seconds the shutdown may take before the rest is abandoned (Railway waits 10 s by default).
SHUTDOWN_TIMEOUT = 8.0


class Runtime:
    """Everything a long-running paperbot process needs.

    Args:
        settings: validated settings.
        jobs: where backtests and charts run (None: a thread of this process).
        source_factory: REST sources for the engine (tests point it at a stand-in).
    """

    def __init__(self, settings: Settings, jobs: JobPool | None = None,
                 source_factory=None) -> None:
        self.settings = settings
        self.jobs = jobs
        self.source_factory = source_factory
        self.bus = EventBus()
        self.store: Store | None = None
        self.engine: ForwardEngine | None = None
        self.service: PaperService | None = None
        self._scheduler = None

    async def __aenter__(self) -> Runtime:
        self.store = await Store.open(self.settings.db_path)
        self.engine = ForwardEngine(self.settings, self.store, self.bus, self.source_factory)
        self.service = PaperService(self.settings, self.jobs, self.store, self.engine)
        self._scheduler = build_scheduler(self.engine)
        self._scheduler.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await asyncio.wait_for(self._close(), timeout=SHUTDOWN_TIMEOUT)
        except TimeoutError:
            log.error("shutdown took longer than %.0f s; exiting anyway", SHUTDOWN_TIMEOUT)

    async def _close(self) -> None:
        if self._scheduler is not None:
            with contextlib.suppress(Exception):
                self._scheduler.shutdown(wait=False)
        if self.engine is not None:
            await self.engine.shutdown()
        if self.store is not None:
            await self.store.close()


async def wait_for_stop() -> str:
    """Wait until SIGTERM or SIGINT arrives; returns the signal's name."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def handle(sig: signal.Signals) -> None:
        if received and sig == signal.SIGINT:
            log.error("second interrupt: exiting now")
            os._exit(130)
        received.append(sig.name)
        log.warning("%s received: shutting down", sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle, sig)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return received[0]
