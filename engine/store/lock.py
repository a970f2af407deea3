"""One paperbot instance per run database: an exclusive ``flock`` on ``<db>.lock``.

Two processes driving the same runs would process every candle twice. ``acquire(db_path)``
takes an exclusive, non-blocking ``fcntl.flock`` on a lock file beside the database and writes
who holds it (pid, host, start time, command) into it as JSON; a second process — or a second
``acquire`` in the same process — gets ``InstanceLocked``, one line naming the holder.

Stale locks need no cleanup: the kernel releases a ``flock`` when the last descriptor of its
open file goes away, so when the holder exits, crashes or is SIGKILLed the next ``acquire``
simply gets the lock (and logs one line naming the holder that did not release it). The lock
file itself is never deleted: deleting it would let two processes lock two different files of
the same name. The descriptor is close-on-exec and closed in ``fork()``ed children, so a worker
process never keeps the lock alive after its parent died.

Linux and macOS (``fcntl``); on NFS ``flock`` may be emulated or local to one host.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from engine.store.checks import ensure_folder, is_a_directory
from engine.store.errors import InstanceLocked, StorageError

__all__ = ["Holder", "InstanceLock", "InstanceLocked", "acquire", "lock_path", "read_holder"]

log = logging.getLogger(__name__)

_HELD: weakref.WeakSet[InstanceLock] = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or last held) a lock: ``started_at`` in ms UTC, None when unknown."""

    pid: int | None
    host: str
    started_at: int | None
    command: str

    def describe(self) -> str:
        """``"paperbot forward, pid 1234 on host web-1, since 2026-12-02 09:00 UTC"``."""
        text = f"pid {self.pid if self.pid is not None else '?'} on host {self.host or '?'}"
        if self.command:
            text = f"{self.command}, {text}"
        if self.started_at is not None:
            since = datetime.fromtimestamp(self.started_at / 1000, tz=UTC)
            text += f", since {since:%Y-%m-%d %H:%M} UTC"
        return text

    def is_this_process(self) -> bool:
        """True when the record names this very process."""
        return self.pid == os.getpid() and self.host == socket.gethostname()


def lock_path(db_path: Path) -> Path:
    """The lock file of a database: ``var/paperbot.db`` → ``var/paperbot.db.lock``."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".lock")


class InstanceLock:
    """A held instance lock; ``release()`` it, or use it as a context manager."""

    def __init__(self, db_path: Path, path: Path, fd: int, holder: Holder) -> None:
        self.db_path = db_path
        self.path = path
        self.holder = holder
        self._fd = fd

    @classmethod
    def acquire(cls, db_path: Path, command: str | None = None) -> InstanceLock:
        """Lock ``db_path`` for this process (never blocks).

        Args:
            db_path: the run database (need not exist yet); its folder is created if needed.
            command: what this process is, for the message others get (default: the program
                and its subcommand from ``sys.argv``, never the options).

        Raises:
            InstanceLocked: another paperbot holds it (or this process does already).
            StorageError: the lock file cannot be created or locked.
        """
        db_path = Path(db_path)
        path = lock_path(db_path)
        if db_path.is_dir():
            raise is_a_directory(db_path)
        ensure_folder(db_path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot create the instance lock {path} of run database "
                               f"{db_path}: {exc.strerror or exc}; its folder must be "
                               f"writable") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd, retries=3)
            os.close(fd)
            raise _locked(db_path, holder) from None
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot lock {path} of run database {db_path}: "
                               f"{exc.strerror or exc}; put the database on a local disk") \
                from None
        previous = _read(fd, retries=0)
        if previous is not None and not previous.is_this_process():
            log.warning("run database %s: the previous holder of its instance lock (%s) "
                        "ended without releasing it; taking the lock over", db_path,
                        previous.describe())
        holder = Holder(os.getpid(), socket.gethostname(), int(time.time() * 1000),
                        command if command is not None else _command())
        record = json.dumps({"pid": holder.pid, "host": holder.host,
                             "started_at": holder.started_at, "command": holder.command})
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, record.encode() + b"\n", 0)
        except OSError as exc:
            os.close(fd)  # also releases the flock
            raise StorageError(f"cannot write the instance lock {path} of run database "
                               f"{db_path}: {exc.strerror or exc}") from None
        lock = cls(db_path, path, fd, holder)
        _HELD.add(lock)
        return lock

    @property
    def held(self) -> bool:
        """True until ``release()``."""
        return self._fd >= 0

    def release(self) -> None:
        """Clear the holder record, unlock and close (idempotent).

        A cleanly released lock leaves an empty file, so the next holder logs no takeover.
        """
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        _HELD.discard(self)
        try:
            os.ftruncate(fd, 0)
        except OSError as exc:
            log.warning("could not clear the instance lock %s: %s", self.path, exc)
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def _forget_in_child(self) -> None:
        # after fork(): close the child's copy without unlocking (LOCK_UN would release the
        # parent's lock too, as both descriptors share one open file)
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def acquire(db_path: Path, command: str | None = None) -> InstanceLock:
    """``InstanceLock.acquire``: lock ``db_path`` for this process (see there)."""
    return InstanceLock.acquire(db_path, command)


def read_holder(db_path: Path) -> Holder | None:
    """The holder recorded beside ``db_path`` (current or stale), None when none is."""
    try:
        fd = os.open(lock_path(db_path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _read(fd, retries=0)
    finally:
        os.close(fd)


def _locked(db_path: Path, holder: Holder | None) -> InstanceLocked:
    if holder is not None and holder.is_this_process():
        return InstanceLocked(f"database {db_path} is already open in this process "
                              f"(pid {holder.pid}); one instance per database")
    who = holder.describe() if holder is not None else "holder unknown"
    return InstanceLocked(f"database {db_path} is in use by another paperbot ({who}); "
                          f"stop it first: one instance per database")


def _read(fd: int, retries: int) -> Holder | None:
    # the holder writes its record right after locking: a contender may catch it empty
    for attempt in range(retries + 1):
        try:
            data = json.loads(os.pread(fd, 4096, 0) or b"null")
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict):
            pid = data.get("pid")
            started = data.get("started_at")
            return Holder(pid if isinstance(pid, int) else None, str(data.get("host") or ""),
                          started if isinstance(started, int) else None,
                          str(data.get("command") or "")[:80])
        if attempt < retries:
            time.sleep(0.02)
    return None


def _command() -> str:
    argv = sys.argv or [""]
    program = Path(argv[0]).name
    if program == "__main__.py":
        program = f"python -m {Path(argv[0]).parent.name}"
    elif program in ("", "-", "-c"):
        program = "python"
    words = [program, *[a for a in argv[1:2] if not a.startswith("-")]]
    return " ".join(words)


def _close_in_child() -> None:
    for lock in list(_HELD):
        lock._forget_in_child()


os.register_at_fork(after_in_child=_close_in_child)
