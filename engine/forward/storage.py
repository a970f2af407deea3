"""Writes of forward runs that outlast storage trouble: retry, alert, never drift apart.

A run's memory moves on when it processes a candle (positions, balance, strategy state); the
database must follow before the next candle, or the two disagree. When SQLite cannot write —
another process holds the write lock beyond the busy timeout, the disk is full, an I/O error —
``StorageGuard.write`` retries the same transaction with exponential backoff (0.5 s doubling to
10 s, with jitter) for as long as it takes. Meanwhile the run holds its next candles (the feed
queues them; a longer wait is backfilled) and processes them in order once the write succeeds,
so every candle is committed exactly once.

One guard serves every run of the engine: after ``alert_after_s`` (60 s) of failing writes it
publishes one ``StorageUnavailable`` event, and ``StorageRestored`` once a write succeeds again.
Both are published, not stored: the database is what fails. Errors that retrying cannot fix
(a constraint violation: a bug) are raised to the caller.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from engine.events import Event, StorageRestored, StorageUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

#: OSError numbers that mean "the storage cannot take writes now" (disk full, I/O, read-only).
_OS_CODES = {errno.ENOSPC, errno.EIO, errno.EROFS, errno.EDQUOT, errno.EAGAIN, errno.EBUSY,
             errno.ENOMEM}


def storage_unavailable(exc: BaseException) -> bool:
    """True for errors that retrying the same write may overcome.

    sqlite3.OperationalError covers "database is locked", "disk I/O error", "database or disk
    is full" and "unable to open database file"; an OSError with ENOSPC/EIO/EROFS… the same
    conditions raised by the file system.
    """
    if isinstance(exc, sqlite3.OperationalError):
        return True
    return isinstance(exc, OSError) and exc.errno in _OS_CODES


def now_ms() -> int:
    """Wall-clock time, ms UTC."""
    return int(time.time() * 1000)


class StorageGuard:
    """Retries writes while storage is unavailable and reports outages once.

    Args:
        publish: where ``StorageUnavailable``/``StorageRestored`` go (the event bus).
        alert_after_s: seconds of failing writes before ``StorageUnavailable`` is published.
        backoff_initial, backoff_max: retry delays in seconds (doubling, 80–100 % jitter).
    """

    def __init__(self, publish: Callable[[Event], None], alert_after_s: float = 60.0,
                 backoff_initial: float = 0.5, backoff_max: float = 10.0) -> None:
        self.publish = publish
        self.alert_after_s = alert_after_s
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.failing_since: float | None = None  # monotonic seconds of the first failure
        self.failing_since_ms: int | None = None
        self.last_error = ""
        self.failures = 0
        self.alerted = False

    @property
    def failing(self) -> bool:
        """True while the last write attempt failed."""
        return self.failing_since is not None

    async def write(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Await ``call()`` (a new awaitable per attempt) until it succeeds.

        Each attempt is shielded: cancelling the caller (a shutdown) never interrupts a
        transaction half-way; the attempt in flight finishes on its own.

        Raises:
            Exception: whatever ``call`` raised when it is not a storage outage.
            asyncio.CancelledError: when the caller is cancelled (nothing half-written).
        """
        delay = self.backoff_initial
        while True:
            try:
                result = await asyncio.shield(call())
            except Exception as exc:
                if not storage_unavailable(exc):
                    raise
                self._failed(exc, what)
                await asyncio.sleep(delay * random.uniform(0.8, 1.0))
                delay = min(self.backoff_max, delay * 2)
                continue
            self._succeeded()
            return result

    def _failed(self, exc: BaseException, what: str) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            self.failing_since_ms = now_ms()
            log.warning("storage unavailable (%s): %s; retrying", what, self.last_error)
        elapsed = time.monotonic() - self.failing_since
        if not self.alerted and elapsed >= self.alert_after_s:
            self.alerted = True
            log.error("storage unavailable for %.0f s: %s; runs are holding their candles",
                      elapsed, self.last_error)
            self.publish(StorageUnavailable("", now_ms(), self.last_error,
                                            self.failing_since_ms or now_ms()))

    def _succeeded(self) -> None:
        if self.failing_since is None:
            return
        down = time.monotonic() - self.failing_since
        log.warning("storage available again after %.1f s (%d failed attempts)", down,
                    self.failures)
        if self.alerted:
            self.publish(StorageRestored("", now_ms(), int(down * 1000)))
        self.failing_since = self.failing_since_ms = None
        self.failures = 0
        self.alerted = False
