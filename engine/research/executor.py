"""One interface that runs many backtests: a local process pool, or a Dask cluster.

``make_executor(scheduler, workers)`` returns a ``LocalExecutor`` (a process pool sized to the
machine; nothing to install or start) unless ``scheduler`` (``PAPERBOT_DASK_SCHEDULER``) names
a scheduler (``tcp://host:8786``), then a ``DaskExecutor`` (``distributed.Client``). Both take
the same calls::

    ex = make_executor(settings.dask_scheduler, request.workers)
    try:
        ex.start(dataset)             # candles go to each worker once
        ex.submit(TrialSpec(...))     # as many as wanted
        for outcome in ex.collect():  # those finished (waits for at least one)
            ...
    finally:
        ex.close()

A trial that raises, a worker process that dies, or a Dask worker that is lost fails that
trial (``TrialOutcome.error``), never the study: a broken local pool is replaced, the trials it
held run again one at a time with nothing else running until the one that kills its worker is
found (only that one fails), and the work goes on.

Short trials travel in batches on the local pool: a pool round trip (pickling, pipes, the
pool's threads) costs the coordinator about half a millisecond, a tenth of a 5 ms trial on a
year of 1h candles — CPU taken from the workers on a 2-core machine. Once a few trials have
told how long a trial takes, the pool sends ``BATCH_SECONDS`` worth of trials per round trip
(at most ``MAX_BATCH``); trials of 25 ms or more still go one by one. ``capacity`` says how
many trials a caller should keep submitted so that no worker waits.
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
    run_pooled_batch,
    run_trial,
)

log = logging.getLogger(__name__)

#: a batch of short trials takes about this long in its worker (seconds)
BATCH_SECONDS = 0.025
#: the most trials in one batch
MAX_BATCH = 16


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

    @property
    def workers(self) -> int:
        """Trials that run at the same time."""
        raise NotImplementedError

    @property
    def capacity(self) -> int:
        """Trials to keep submitted and not yet collected so that no worker waits."""
        return 2 * self.workers

    def start(self, dataset: Dataset) -> None:
        """Ship ``dataset`` to the workers (once)."""
        raise NotImplementedError

    def submit(self, spec: TrialSpec) -> None:
        """Queue one trial."""
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
        self._futures: dict[Future, list[TrialSpec]] = {}
        self._queued: list[TrialSpec] = []  # submitted, not yet sent to the pool
        self._alone: list[TrialSpec] = []  # sent one at a time (after a broken batch)
        self._probe: Future | None = None  # the one of them running
        self._seconds = [0.0, 0]  # sum and count of the trials' own times
        self.batch = 1  #: trials per pool round trip (adapted: module doc)
        self.restarts = 0
        self.description = f"local process pool, {self._workers} worker" + \
            ("s" if self._workers != 1 else "")

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def capacity(self) -> int:
        return 2 * self._workers * self.batch

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
        self._queued.append(spec)
        if len(self._queued) >= self.batch:
            self._send()

    def _send(self) -> None:
        """Send the queued trials to the pool in batches — or, after a broken pool, the
        trials it held one at a time with nothing else running, so that the trial that kills
        its worker is found and is the only one that fails."""
        if self._alone:
            if self._probe not in self._futures:
                self._probe = self._submit([self._alone.pop(0)])
            return
        queued, self._queued = self._queued, []
        for i in range(0, len(queued), self.batch):
            self._submit(queued[i:i + self.batch])

    def _submit(self, chunk: list[TrialSpec]) -> Future:
        assert self._pool is not None
        try:
            future = self._pool.submit(run_pooled_batch, chunk)
        except BrokenProcessPool:
            self._restart()
            future = self._pool.submit(run_pooled_batch, chunk)
        self._futures[future] = chunk
        return future

    def _restart(self) -> None:
        self.restarts += 1
        log.warning("a research worker process died; starting a new pool")
        self._new_pool()

    def _learn(self, outcomes: list[TrialOutcome]) -> None:
        """Size the batches from the trials' own times (module doc)."""
        total = self._seconds
        total[0] += sum(o.seconds for o in outcomes)
        total[1] += len(outcomes)
        if total[1] >= 2 * self._workers and total[0] > 0:
            self.batch = max(1, min(MAX_BATCH, int(BATCH_SECONDS / (total[0] / total[1]))))

    def collect(self, timeout: float | None = None) -> list[TrialOutcome]:
        if self._queued or self._alone:
            self._send()
        if not self._futures:
            return []
        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        out: list[TrialOutcome] = []
        broken = False
        for future in done:
            chunk = self._futures.pop(future)
            try:
                outcomes = future.result()
            except BrokenProcessPool:
                broken = True
                if future is self._probe:  # it ran alone: it killed its worker
                    out.append(TrialOutcome(chunk[0].number, None,
                                            "the worker process died during this trial"))
                else:
                    self._alone += chunk
                continue
            except Exception as exc:  # e.g. an outcome that could not be pickled
                out += [TrialOutcome(spec.number, None, f"{type(exc).__name__}: {exc}")
                        for spec in chunk]
                continue
            out += outcomes
            self._learn(outcomes)
        if broken:
            # every other trial of the broken pool runs again, alone, on a new pool
            for chunk in self._futures.values():
                self._alone += chunk
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
        self._queued.clear()
        self._alone.clear()


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
