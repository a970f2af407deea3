"""The always-on process: store, forward engine, scheduler and service, and how they stop.

``Runtime`` owns the resources (``async with``). ``wait_for_stop`` installs SIGTERM/SIGINT
handlers that only record the signal (the uvicorn pattern); the main coroutine then leaves the
``async with`` block, which stops the scheduler, detaches every run (a candle's transaction in
flight is shielded and completes), closes the websockets, REST sessions and the database.

Shutdown is bounded whatever the state of the exchange, Discord or the disk: the first signal
also arms a watchdog that ends the process ``HARD_EXIT_AFTER`` seconds later if the graceful
path has not finished (a hung DNS lookup, a thread that does not stop). Nothing is lost by it:
each processed candle is already committed. A second SIGINT exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from types import TracebackType

from engine.forward.bus import EventBus
from engine.forward.commands import process_commands
from engine.forward.engine import ForwardEngine
from engine.forward.schedule import build_scheduler
from engine.service import PaperService
from engine.settings import Settings
from engine.store.lock import InstanceLock
from engine.store.store import Store
from engine.workers import JobPool

log = logging.getLogger(__name__)

#: Seconds the graceful shutdown of the runtime may take before the rest is abandoned.
SHUTDOWN_TIMEOUT = 5.0
#: Seconds after SIGTERM/SIGINT when the process exits whatever it is doing (Railway sends
#: SIGKILL after its draining window, 15 s in railway.toml).
HARD_EXIT_AFTER = 8.0


class Runtime:
    """Everything a long-running paperbot process needs.

    Args:
        settings: validated settings.
        jobs: where backtests and charts run (None: a thread of this process).
        source_factory: REST sources for the engine (tests point it at a stand-in).
        engine_options: keyword arguments for ``ForwardEngine`` (tests shorten backoffs).
    """

    def __init__(self, settings: Settings, jobs: JobPool | None = None,
                 source_factory=None, **engine_options) -> None:
        self.settings = settings
        self.jobs = jobs
        self.source_factory = source_factory
        self.engine_options = engine_options
        self.bus = EventBus()
        self.store: Store | None = None
        self.engine: ForwardEngine | None = None
        self.service: PaperService | None = None
        self.lock: InstanceLock | None = None
        self._scheduler = None

    async def __aenter__(self) -> Runtime:
        """Lock the database for this process (one instance per database), open it, build the
        engine and service, start the scheduler.

        Raises:
            engine.store.errors.InstanceLocked: another paperbot holds the database.
            engine.store.errors.StorageError: the database cannot be opened (one line).
        """
        self.lock = InstanceLock.acquire(self.settings.db_path)
        try:
            self.store = await Store.open(self.settings.db_path)
        except BaseException:
            self.lock.release()
            raise
        self.engine = ForwardEngine(self.settings, self.store, self.bus, self.source_factory,
                                    **self.engine_options)
        self.service = PaperService(self.settings, self.jobs, self.store, self.engine)
        self._scheduler = build_scheduler(self.engine)
        # commands the CLI queued for this service (paperbot pause|resume|panic)
        self._scheduler.add_job(process_commands, "interval", seconds=1, args=[self.service],
                                id="commands", coalesce=True, max_instances=1)
        self._scheduler.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await asyncio.wait_for(self._close(), timeout=SHUTDOWN_TIMEOUT)
        except TimeoutError:
            log.error("shutdown took longer than %.0f s; exiting anyway", SHUTDOWN_TIMEOUT)
        finally:
            if self.lock is not None:
                self.lock.release()

    async def _close(self) -> None:
        if self.service is not None:
            self.service.research.shutdown()
        if self._scheduler is not None:
            with contextlib.suppress(Exception):
                self._scheduler.shutdown(wait=False)
        if self.engine is not None:
            await self.engine.shutdown()
        if self.store is not None:
            # a transaction still in flight (shielded) finishes before the connection closes
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.store.write_lock.acquire(), timeout=1.0)
            await self.store.close()


async def wait_for_stop() -> str:
    """Wait until SIGTERM or SIGINT arrives; returns the signal's name."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def handle(sig: signal.Signals) -> None:
        if received and sig == signal.SIGINT:
            log.error("second interrupt: exiting now")
            hard_exit(130)
        if not received:
            arm_hard_exit(HARD_EXIT_AFTER)
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


def hard_exit(code: int) -> None:
    """Flush what can be flushed and end the process now (no cleanup, no thread joins)."""
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def arm_hard_exit(seconds: float) -> threading.Timer:
    """End the process in ``seconds`` unless it has exited by then (a daemon timer thread)."""

    def fire() -> None:
        log.error("shutdown did not finish within %.0f s; exiting now (every processed candle "
                  "is stored)", seconds)
        hard_exit(0)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer
