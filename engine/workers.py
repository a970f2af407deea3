"""CPU-heavy jobs (backtests, charts) off the event loop, with progress reports.

``JobPool(processes=1)`` runs jobs in a separate process (``spawn``): the event loop of the bot
never competes with a backtest for the GIL, so the Discord heartbeat keeps its rhythm, and the
long-running process never imports pandas or matplotlib. ``JobPool(processes=0)`` runs them in
a thread instead (the CLI, tests). A job is named ``"module:function"`` (resolved where it runs,
so the caller never imports the job's heavy modules); the function takes a keyword ``progress``
callable, and what it reports (short texts) reaches the caller's callback on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import itertools
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

_worker_queue: Any = None  # set in each worker process by _init


def _init(progress_queue: Any, parent_pid: int) -> None:
    global _worker_queue
    _worker_queue = progress_queue
    die_with_parent(parent_pid)


def die_with_parent(parent_pid: int, poll_s: float = 0.5) -> None:
    """End this (worker) process when ``parent_pid`` dies, even by SIGKILL.

    On Linux the kernel sends SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``);
    everywhere a daemon thread also checks every ``poll_s`` seconds whether the parent is gone
    (the worker was re-parented) and exits then. A worker never outlives the service.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def resolve(job: str) -> Callable[..., Any]:
    """``"engine.backtest_job:run_backtest_job"`` → the function (imported here)."""
    module, _, name = job.partition(":")
    return getattr(importlib.import_module(module), name)


def _run_job(job_id: int, job: str, args: tuple[Any, ...]) -> Any:
    def progress(text: str) -> None:
        if _worker_queue is not None:
            _worker_queue.put((job_id, text))

    return resolve(job)(*args, progress=progress)


def _warm_up() -> bool:
    """Import what jobs need, so the first real job does not pay for it."""
    import engine.backtest_job  # noqa: F401  (pandas, pyarrow, matplotlib)

    return True


class JobPool:
    """Where CPU-heavy work runs. Use ``await start()`` once, ``await run(…)`` per job.

    Args:
        processes: worker processes; 0 runs jobs in a thread of this process.
    """

    def __init__(self, processes: int = 1) -> None:
        self.processes = processes
        self._executor: Executor | None = None
        self._callbacks: dict[int, Callable[[str], None]] = {}
        self._ids = itertools.count(1)
        self._queue: Any = None
        self._reader: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = threading.Event()

    async def start(self, warm: bool = True) -> None:
        """Create the workers (and import the job modules in them when ``warm``)."""
        self._loop = asyncio.get_running_loop()
        if self.processes > 0:
            context = multiprocessing.get_context("spawn")
            self._queue = context.Queue()
            self._executor = ProcessPoolExecutor(self.processes, mp_context=context,
                                                 initializer=_init,
                                                 initargs=(self._queue, os.getpid()))
            self._reader = threading.Thread(target=self._read_progress, name="job-progress",
                                            daemon=True)
            self._reader.start()
        else:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="job")
        if warm:
            await self._loop.run_in_executor(self._executor, _warm_up)

    async def run(self, job: str, *args: Any,
                  progress: Callable[[str], None] | None = None) -> Any:
        """Run the function named ``job`` (``"module:function"``) with ``*args`` in a worker.

        Returns its result; raises whatever it raised.
        """
        if self._executor is None:
            await self.start(warm=False)
        assert self._executor is not None and self._loop is not None
        job_id = next(self._ids)
        if progress is not None:
            self._callbacks[job_id] = progress
        try:
            if self.processes > 0:
                return await self._loop.run_in_executor(self._executor, _run_job, job_id, job,
                                                        args)
            loop = self._loop

            def report(text: str) -> None:
                if progress is not None:
                    loop.call_soon_threadsafe(progress, text)

            return await loop.run_in_executor(
                self._executor, lambda: resolve(job)(*args, progress=report))
        finally:
            self._callbacks.pop(job_id, None)

    def _read_progress(self) -> None:
        while not self._closing.is_set():
            try:
                job_id, text = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            callback = self._callbacks.get(job_id)
            if callback is not None and self._loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop may be closing
                    self._loop.call_soon_threadsafe(callback, text)

    def shutdown(self) -> None:
        """Stop the workers (jobs still running are abandoned)."""
        self._closing.set()
        executor, self._executor = self._executor, None
        if isinstance(executor, ProcessPoolExecutor):
            # a backtest may be mid-run: end the worker now rather than delay the shutdown
            for process in list(getattr(executor, "_processes", {}).values()):
                process.terminate()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if self._reader is not None:
            self._reader.join(timeout=1)
