"""Errors that carry user-facing text, and the scrubbing of secrets out of any text shown.

Front-ends (CLI, Discord) print ``str(error)`` as is: the message says what is wrong and what
is valid. Anything else escaping the service is a bug and is logged with its traceback.

Texts built from exchange errors may quote URLs, and a URL may carry credentials (a REST
override such as ``https://user:secret@host/?apiKey=x``). ``scrub_secrets`` masks them; every
``ServiceError`` passes its message through it, and ``install_log_scrubber`` does the same for
log records.
"""

from __future__ import annotations

import logging
import re

# scheme://userinfo@host → scheme://***@host (userinfo: anything up to the first / or @)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"<>]+@")
# ?apiKey=…, &api_key=…, &secret=…, &token=…, &signature=…, &password=… (any key ending so)
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:[\w.-]*(?:key|secret|token|signature|password|passwd|passphrase)|sig|sign)=)"
    r"[^&;#\s'\"<>]*"
)


def scrub_secrets(text: str) -> str:
    """``text`` with URL credentials masked.

    ``https://user:pw@host/x?apiKey=abc&limit=5`` → ``https://***@host/x?apiKey=***&limit=5``:
    the userinfo of any URL becomes ``***@`` and the values of query keys that name a secret
    (``apikey``, ``api_key``, ``key``, ``secret``, ``token``, ``signature``, ``password``…)
    become ``***``. Other text is unchanged.
    """
    text = _USERINFO.sub(r"\1***@", text)
    return _QUERY_SECRET.sub(r"\1***", text)


class ServiceError(Exception):
    """A request the service cannot carry out; the message is meant for the trader.

    The message is scrubbed of credentials (``scrub_secrets``) when the error is built, so text
    copied from ccxt or ``FetchError`` never shows a secret of the REST URL override.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(scrub_secrets(str(message)))


class MissingCandles(ServiceError):
    """A backtest found no cached candles for its span; a front-end may offer to fetch them.

    ``str(error)`` is the command-line text (it names the cache and ``paperbot data fetch``);
    the fields let a phone front-end say it without paths or shell commands: ``exchange``,
    ``symbol``, ``timeframe`` and the span to fetch, ``start``/``end`` ms UTC (warm-up
    included), ``offline`` when fetching is switched off (``PAPERBOT_OFFLINE``).
    """

    def __init__(self, message: object, *, exchange: str, symbol: str, timeframe: str,
                 start: int, end: int, offline: bool = False) -> None:
        super().__init__(message)
        self.exchange = exchange
        self.symbol = symbol
        self.timeframe = timeframe
        self.start = start
        self.end = end
        self.offline = offline


class SecretScrubber(logging.Filter):
    """A logging filter that masks credentials in the message and traceback of each record.

    The record is rendered once (``msg % args``), scrubbed and stored back without args; an
    exception's traceback text is rendered and scrubbed too, so every handler after this
    filter prints the masked form.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub ``record`` in place; always keeps it (returns True)."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return True
        record.msg, record.args = scrub_secrets(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_secrets(record.stack_info)
        return True


def install_log_scrubber(logger: logging.Logger | None = None) -> None:
    """Attach a ``SecretScrubber`` to every handler of ``logger`` (the root logger by default).

    Handler filters see the records of every child logger too. Calling it again adds no second
    filter; call it after the handlers exist (after ``logging.basicConfig``).
    """
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, SecretScrubber) for f in handler.filters):
            handler.addFilter(SecretScrubber())
