"""Errors of the run database, its folder, its instance lock and its schema.

Every one is a ``ServiceError``: its text is one line for the trader that names the file and
says what to do, and the CLI prints it as ``error: …`` with exit status 2.
"""

from __future__ import annotations

from engine.errors import ServiceError


class StorageError(ServiceError):
    """The run database cannot be used as it is (missing, unreadable, read-only, corrupt …)."""


class InstanceLocked(StorageError):
    """Another paperbot process (or this one) already holds the database's instance lock."""
