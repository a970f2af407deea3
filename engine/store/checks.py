"""Checks of the run database at start: every way it can be unusable becomes one line.

``Store.open`` runs them in this order, so that a bad database stops the process at start (exit
status 2 in the CLI) instead of at the first candle, with a message that names the file and
says what to do:

1. ``preflight`` (file system, before SQLite touches anything): the path is a directory; its
   folder cannot be created or is not writable; the file is missing (``create=False``), or
   missing while a ``-wal``/``-shm`` file or a backup beside it says it existed (it went
   missing: refuse rather than start afresh); the file is not readable or not writable; it is
   not a SQLite database; it is shorter than its header says (truncated).
2. ``first_problem(db, "quick_check")``: ``PRAGMA quick_check``, which reads every page
   (interior-page corruption, which no ordinary read at start would notice). It is O(database
   size): 0.14 s for 100 MB on the development machine, ``Store.open`` 0.22 s in all, with the
   file in the page cache (``bench/store_open.py``).
3. ``probe_writable``: ``BEGIN IMMEDIATE``, a no-op header write, ``ROLLBACK``: a read-only file,
   ``-shm`` or folder that ``os.access`` does not reveal (root, read-only mounts).
4. ``translate``: any ``sqlite3.Error`` left over, by its SQLite error name.
"""

from __future__ import annotations

import glob
import os
import re
import sqlite3
from pathlib import Path

import aiosqlite

from engine.store.errors import StorageError
from engine.store.schema import SchemaError, migrate

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_MAGIC = b"SQLite format 3\x00"
#: Files beside ``<db>`` that mean a database existed there (``{}`` is the database's name).
LEFTOVER_SUFFIXES = ("-wal", "-shm", "-journal")
BACKUP_GLOBS = ("{}.bak*", "{}.backup*", "{}.*.bak")

_WHERE = "--db / PAPERBOT_DB_PATH"


def recover_hint(path: Path) -> str:
    """How to get a database back: a backup copy, or SQLite's ``.recover``."""
    return (f"restore it from a backup copy, or recover what is left with "
            f"sqlite3 {path} \".recover\" | sqlite3 recovered.db and point {_WHERE} at "
            f"recovered.db")


def is_a_directory(path: Path) -> StorageError:
    """The database path names a folder."""
    return StorageError(f"run database {path} is a directory; give a file path with {_WHERE}, "
                        f"e.g. {path / 'paperbot.db'}")


def ensure_folder(path: Path) -> None:
    """Create the folder of the database ``path`` (and its parents) if needed.

    Raises:
        StorageError: the folder cannot be created (a file is in the way, no permission …).
    """
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocked = next((p for p in (folder, *folder.parents) if p.exists()), None)
        why = (f"{blocked} is a file, not a folder" if blocked is not None
               and not blocked.is_dir() else exc.strerror or str(exc))
        raise StorageError(f"cannot create the folder {folder} for run database {path}: "
                           f"{why}; choose another {_WHERE}") from None


def leftovers(path: Path) -> list[Path]:
    """``-wal``/``-shm``/``-journal`` files and backups beside ``path``, sorted by name."""
    found = {Path(f"{path}{suffix}") for suffix in LEFTOVER_SUFFIXES}
    found = {p for p in found if p.exists()}
    name = glob.escape(path.name)
    for pattern in BACKUP_GLOBS:
        found.update(path.parent.glob(pattern.format(name)))
    return sorted(found)


def preflight(path: Path, *, create: bool) -> bool:
    """File-system checks before SQLite opens ``path``; True when a new database will be made.

    A missing or empty file is a new database, unless ``create`` is False or files beside it
    (``leftovers``) say a database was there.

    Raises:
        StorageError: one line naming the file and what to do.
    """
    try:
        return _preflight(path, create)
    except OSError as exc:  # e.g. a folder on the way that this user may not enter
        raise StorageError(f"cannot reach run database {path}: {exc.strerror or exc}; check "
                           f"the path and its permissions, or choose another {_WHERE}") from None


def _preflight(path: Path, create: bool) -> bool:
    if path.is_dir():
        raise is_a_directory(path)
    ensure_folder(path)
    exists = path.exists()
    if not exists and not create:
        raise StorageError(f"no run database at {path}; start a run with paperbot forward, "
                           f"or point {_WHERE} at the database")
    if not exists or path.stat().st_size == 0:
        left = leftovers(path)
        if left:
            named = ", ".join(str(p) for p in left)
            state = "is missing" if not exists else "is empty"
            raise StorageError(
                f"run database {path} {state} but {named} "
                f"{'is' if len(left) == 1 else 'are'} still there, so it looks deleted or "
                f"moved: restore it (a backup, or the file it was moved to), or remove "
                f"{'that file' if len(left) == 1 else 'those files'} to start a new database")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise _folder_not_writable(path)
        return True
    _check_file(path)
    return False


def _check_file(path: Path) -> None:
    if not os.access(path, os.R_OK):
        raise StorageError(f"run database {path} is not readable; fix its permissions or "
                           f"point {_WHERE} at another file")
    if not os.access(path, os.W_OK):
        raise read_only(path)
    beside = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
    if not all(p.exists() for p in beside) and not os.access(path.parent, os.W_OK | os.X_OK):
        raise _folder_not_writable(path)
    try:
        with path.open("rb") as f:
            head = f.read(100)
        size = path.stat().st_size
    except OSError as exc:
        raise StorageError(f"cannot read run database {path}: {exc.strerror or exc}; check "
                           f"the disk and the file") from None
    if head[:16] != SQLITE_MAGIC[:len(head[:16])]:
        raise not_a_database(path, head)
    if len(head) < 100:
        raise truncated(path, size, None)
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise corrupt(path, f"invalid page size {page_size} in the header")
    pages = int.from_bytes(head[28:32], "big")
    header_valid = pages > 0 and head[24:28] == head[92:96]
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return  # the newest pages may live in the WAL: let SQLite judge the size
    if header_valid:
        if size < pages * page_size:
            raise truncated(path, size, pages * page_size)
    elif size % page_size:
        raise truncated(path, size, None)


def _folder_not_writable(path: Path) -> StorageError:
    return StorageError(
        f"folder {path.parent} of run database {path} is not writable (SQLite writes "
        f"{path.name}-wal and {path.name}-shm beside the database); fix its permissions or "
        f"choose another {_WHERE}")


def read_only(path: Path) -> StorageError:
    """The database (or its ``-wal``/``-shm`` files or folder) cannot be written."""
    return StorageError(
        f"run database {path} is read-only; make it writable (the file, its -wal and -shm "
        f"files and its folder) or copy it elsewhere and point {_WHERE} at the copy")


def not_a_database(path: Path, head: bytes) -> StorageError:
    """A file that is not SQLite at all (``head``: its first bytes, shown when printable)."""
    start = head[:16].decode("ascii", "replace")
    shown = f" (it starts with {start!r})" if start.isprintable() and start.strip() else ""
    return StorageError(
        f"{path} is not a SQLite database{shown}; point {_WHERE} at the run database, or "
        f"move this file away to start a new one")


def truncated(path: Path, size: int, expected: int | None) -> StorageError:
    """A database file cut short (``size`` and ``expected`` in bytes; None: unknown)."""
    of = f" of {expected:,}" if expected else ""
    return StorageError(f"run database {path} is truncated ({size:,}{of} bytes); "
                        f"{recover_hint(path)}")


def corrupt(path: Path, problem: str) -> StorageError:
    """A database whose pages are damaged; ``problem`` is SQLite's first complaint."""
    problem = re.sub(r"\*\*\* in database \w+ \*\*\*", " ", problem)
    problem = " ".join(problem.split())
    if len(problem) > 160:
        problem = problem[:157] + "..."
    return StorageError(f"run database {path} is corrupt ({problem}); {recover_hint(path)}")


async def connect(path: Path, *, create: bool) -> tuple[aiosqlite.Connection, bool]:
    """Open ``path`` with every check of this module, in WAL mode and migrated.

    Returns:
        The connection (autocommit, ``aiosqlite.Row`` rows) and whether it was created.

    Raises:
        StorageError: one line naming the file and what to do (``SchemaError`` for a database
            from a newer paperbot).
    """
    created = preflight(path, create=create)
    try:
        conn = aiosqlite.connect(path, isolation_level=None)
        # a hung statement must not keep the process alive after a bounded shutdown; WAL
        # makes an exit mid-transaction as safe as a crash
        conn._thread.daemon = True
        db = await conn
    except sqlite3.Error as exc:
        raise translate(path, exc) from None
    try:
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA busy_timeout=5000")
        # 512 KiB of page cache (default 2 MiB): the engine's reads are small and recent, and
        # an always-on process should not grow by a cache it barely uses (bench/soak.py)
        await db.execute("PRAGMA cache_size=-512")
        if not created:
            problem = await first_problem(db, "quick_check")
            if problem != "ok":
                raise corrupt(path, problem)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA foreign_keys=ON")
        await probe_writable(db)
        await migrate(db)
    except BaseException as exc:
        await db.close()
        if isinstance(exc, SchemaError):
            raise SchemaError(f"run database {path}: {exc}") from None
        if isinstance(exc, sqlite3.Error):
            raise translate(path, exc) from None
        raise
    return db, created


async def first_problem(db: aiosqlite.Connection, pragma: str = "quick_check") -> str:
    """``PRAGMA quick_check`` (or ``integrity_check``): "ok", or the first problem reported.

    Raises:
        sqlite3.DatabaseError: when SQLite cannot even walk the pages (translate it).
    """
    async with db.execute(f"PRAGMA {pragma}(1)") as cur:
        row = await cur.fetchone()
    return "ok" if row is None else str(row[0])


async def probe_writable(db: aiosqlite.Connection) -> None:
    """Take the write lock and rewrite ``user_version`` unchanged, then roll back.

    Raises:
        sqlite3.OperationalError: read-only (``SQLITE_READONLY``), busy, disk I/O … (translate
            it).
    """
    await db.execute("BEGIN IMMEDIATE")
    try:
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        await db.execute(f"PRAGMA user_version = {int(row[0]) if row else 0}")
    finally:
        if db.in_transaction:
            await db.execute("ROLLBACK")


def translate(path: Path, exc: sqlite3.Error) -> StorageError:
    """One line for a ``sqlite3`` error raised while opening ``path``."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_NOTADB"):
        return not_a_database(path, b"")
    if name.startswith("SQLITE_CORRUPT"):
        return corrupt(path, str(exc))
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM")):
        return read_only(path)
    if name.startswith("SQLITE_CANTOPEN"):
        return StorageError(
            f"cannot open run database {path}; check that the file and its folder exist and "
            f"are writable (SQLite creates {path.name}-wal and {path.name}-shm beside it)")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StorageError(
            f"run database {path} is locked by another program (a write held longer than "
            f"5 s); close it (an open sqlite3 shell, a backup tool) and start again")
    if name.startswith("SQLITE_FULL"):
        return StorageError(f"the disk holding run database {path} is full; free some space "
                            f"and start again")
    if name.startswith("SQLITE_IOERR"):
        return StorageError(f"cannot read or write run database {path} ({exc}); check the "
                            f"disk and the file")
    return StorageError(f"cannot use run database {path}: {exc}")
