"""One interface that runs many backtests: a local process pool, or a Dask cluster.

``make_executor(settings)`` returns a ``LocalExecutor`` (a process pool sized to the machine;
nothing to install or start) unless ``PAPERBOT_DASK_SCHEDULER`` names a scheduler
(``tcp://host:8786``), then a ``DaskExecutor`` (``distributed.Client``). Both take the same
calls::

    with make_executor(settings) as ex:
        ex.start(dataset)             # candles go to each worker once
        ex.submit(TrialSpec(...))     # as many as wanted
        for outcome in ex.collect():  # those finished (waits for at least one)
            ...

A trial that raises, a worker process that dies, or a Dask worker that is lost fails that
trial (``TrialOutcome.error``), never the study: a broken local pool is replaced and the work
goes on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from engine.errors import ServiceError
from engine.research.trial import (
    Dataset,
    TrialOutcome,
    TrialSpec,
    init_worker,
    run_pooled,
    run_trial,
)

log = logging.getLogger(__name__)


def machine_workers() -> int:
    """CPUs this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def new_dataset_key() -> str:
    """A unique data set id."""
    return uuid.uuid4().hex[:12]


class Executor:
    """Base of the executors: ``start``, ``submit``, ``collect``, ``close``."""

    #: where trials run, for reports ("local pool, 2 workers" / "dask tcp://…, 4 threads")
    description = ""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def workers(self) -> int:
        """Trials that run at the same time."""
        raise NotImplementedError

    def start(self, dataset: Dataset) -> None:
        """Ship ``dataset`` to the workers (once)."""
        raise NotImplementedError

    def submit(self, spec: TrialSpec) -> None:
        """Queue one trial."""
        raise NotImplementedError

    def pending(self) -> int:
        """Trials submitted and not yet collected."""
        raise NotImplementedError

    def collect(self, timeout: float | None = None) -> list[TrialOutcome]:
        """Outcomes of the trials finished so far; waits (up to ``timeout`` s) for one."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the workers (trials still running are abandoned)."""


class LocalExecutor(Executor):
    """A pool of ``workers`` processes (spawned), each holding the data set.

    Args:
        workers: processes; None: one per CPU.
    """

    def __init__(self, workers: int | None = None) -> None:
        self._workers = workers or machine_workers()
        self._pool: ProcessPoolExecutor | None = None
        self._dataset: Dataset | None = None
        self._futures: dict[Future, TrialSpec] = {}
        self.restarts = 0
        self.description = f"local process pool, {self._workers} worker" + \
            ("s" if self._workers != 1 else "")

    @property
    def workers(self) -> int:
        return self._workers

    def start(self, dataset: Dataset) -> None:
        self._dataset = dataset
        self._new_pool()

    def _new_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = ProcessPoolExecutor(self._workers,
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=init_worker,
                                         initargs=(self._dataset, os.getpid()))

    def submit(self, spec: TrialSpec) -> None:
        if self._pool is None:
            raise RuntimeError("start the executor first")
        try:
            future = self._pool.submit(run_pooled, spec)
        except BrokenProcessPool:
            self._restart()
            future = self._pool.submit(run_pooled, spec)
        self._futures[future] = spec

    def pending(self) -> int:
        return len(self._futures)

    def _restart(self) -> None:
        self.restarts += 1
        log.warning("a research worker process died; starting a new pool")
        self._new_pool()

    def collect(self, timeout: float | None = None) -> list[TrialOutcome]:
        if not self._futures:
            return []
        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        out, broken = [], False
        for future in done:
            spec = self._futures.pop(future)
            try:
                out.append(future.result())
            except BrokenProcessPool:
                broken = True
                out.append(TrialOutcome(spec.number, None,
                                        "the worker process died during this trial"))
            except Exception as exc:  # e.g. an outcome that could not be pickled
                out.append(TrialOutcome(spec.number, None, f"{type(exc).__name__}: {exc}"))
        if broken:
            # every trial of the broken pool fails; later trials go to a new pool
            for spec in self._futures.values():
                out.append(TrialOutcome(spec.number, None,
                                        "the worker pool broke during this trial"))
            self._futures.clear()
            self._restart()
        return out

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
        self._futures.clear()


class DaskExecutor(Executor):
    """Trials on a Dask distributed cluster (``distributed.Client``).

    Args:
        address: the scheduler, ``tcp://host:8786``; ignored when ``client`` is given.
        client: an existing client (tests pass one of a ``LocalCluster``).
        timeout: seconds to wait for the scheduler.

    Raises (constructor):
        ServiceError: the scheduler cannot be reached.
    """

    def __init__(self, address: str | None = None, client: Any = None,
                 timeout: float = 10.0) -> None:
        from distributed import Client

        self._own = client is None
        try:
            self.client = client or Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ServiceError(f"cannot reach the Dask scheduler {address} "
                               f"(PAPERBOT_DASK_SCHEDULER): {exc}") from None
        self._data: Any = None
        self._futures: dict[Any, TrialSpec] = {}
        self._finished: queue.Queue[Any] = queue.Queue()
        self.description = f"dask {self.client.scheduler.address}, {self.workers} threads"

    @property
    def workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def start(self, dataset: Dataset) -> None:
        self._data = self.client.scatter(dataset, broadcast=True, hash=False)

    def submit(self, spec: TrialSpec) -> None:
        future = self.client.submit(run_trial, self._data, spec, pure=False,
                                    key=f"paperbot-trial-{uuid.uuid4().hex}")
        self._futures[future] = spec
        future.add_done_callback(self._finished.put)

    def pending(self) -> int:
        return len(self._futures)

    def collect(self, timeout: float | None = None) -> list[TrialOutcome]:
        if not self._futures:
            return []
        try:
            done = [self._finished.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                done.append(self._finished.get_nowait())
            except queue.Empty:
                break
        out = []
        for future in done:
            spec = self._futures.pop(future, None)
            if spec is None:  # already collected (a callback after a cancel)
                continue
            if future.status == "finished":
                try:
                    out.append(future.result())
                    continue
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
            else:
                try:
                    exc = future.exception()
                    error = f"{type(exc).__name__}: {exc}"
                except Exception as err:  # cancelled or lost
                    error = f"{type(err).__name__}: {err}"
            out.append(TrialOutcome(spec.number, None, f"dask: {error}"))
        return out

    def close(self) -> None:
        for future in list(self._futures):
            future.cancel()
        self._futures.clear()
        if self._data is not None:
            self._data.release()
            self._data = None
        if self._own:
            self.client.close()


def make_executor(scheduler: str | None, workers: int | None = None) -> Executor:
    """The executor the settings ask for: Dask when ``scheduler`` is set, else local.

    Raises:
        ServiceError: a Dask scheduler that cannot be reached.
    """
    if scheduler:
        return DaskExecutor(scheduler)
    return LocalExecutor(workers)
