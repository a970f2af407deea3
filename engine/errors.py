"""Errors that carry user-facing text.

Front-ends (CLI, Discord) print ``str(error)`` as is: the message says what is wrong and what
is valid. Anything else escaping the service is a bug and is logged with its traceback.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request the service cannot carry out; the message is meant for the trader."""
