"""Where Optuna studies live: a SQLite file beside the run database (``PAPERBOT_STUDY_DB``).

Optuna's journal storage keeps a study as an append-only log of operations and replays it in
memory; ``SqliteJournalBackend`` stores that log in one SQLite table. Asking and telling a
trial costs well under a millisecond this way (Optuna's SQLAlchemy storage takes 15-30 ms a
trial, which would make the coordinator, not the backtests, the limit of a study). A study
is named, survives a killed process (every operation is committed as it happens) and is
resumed by opening it again with the same name.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend

from engine.errors import ServiceError


class SqliteJournalBackend(BaseJournalBackend):
    """Optuna journal logs in a SQLite table (WAL; safe for several processes).

    Args:
        path: the SQLite file (created with its folder when missing).

    Raises:
        ServiceError: when the file cannot be created or opened.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS optuna_journal "
                             "(id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)")
        except (OSError, sqlite3.Error) as exc:
            raise ServiceError(f"cannot open the study database {self.path}: {exc}; set "
                               "PAPERBOT_STUDY_DB to a writable file") from None

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        """Logs number ``log_number_from`` (0-based) onwards, in order."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM optuna_journal WHERE id > ? ORDER BY id",
                                    (log_number_from,)).fetchall()
        return [json.loads(body) for (body,) in rows]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append ``logs`` in one transaction."""
        rows = [(json.dumps(log, separators=(",", ":")),) for log in logs]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO optuna_journal (body) VALUES (?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()


def open_storage(path: Path) -> JournalStorage:
    """The Optuna storage of the study database at ``path``.

    Raises:
        ServiceError: when the file cannot be opened.
    """
    return JournalStorage(SqliteJournalBackend(path))
