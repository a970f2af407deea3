"""Keeps the Discord bot connected while the engine trades, whatever Discord does.

discord.py reconnects a dropped gateway by itself, but a failure before the first connection
(Discord unreachable at boot, a 5xx while logging in or syncing commands) or any exception that
escapes ``Client.start`` ends the client. ``BotKeeper`` then closes it, builds a fresh
``PaperBot`` and starts again after an exponential backoff (2 s doubling to 2 min, with
jitter). The engine is never touched: runs keep trading and their alerts wait in the database
outbox, which the next bot's alert sink delivers (summarised when they are stale).

A token that Discord refuses at the very first login is a configuration error and is raised
(the service stops with one line); after the bot has once logged in, a refused token is logged
and retried every ``backoff_max`` seconds instead, so trading goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import discord

from bot.client import PaperBot
from engine.service import PaperService

log = logging.getLogger(__name__)


class BotKeeper:
    """Runs ``PaperBot`` instances one after another until ``close``.

    Args:
        service: the application service the bot calls.
        token: the Discord bot token (never logged).
        client_options: keyword arguments for ``PaperBot``/``discord.Client``.
        backoff: (first, longest) seconds between attempts.
    """

    def __init__(self, service: PaperService, token: str,
                 client_options: dict[str, Any] | None = None,
                 backoff: tuple[float, float] = (2.0, 120.0)) -> None:
        self.service = service
        self._token = token
        self.options = client_options or {}
        self.backoff_first, self.backoff_max = backoff
        self.bot = PaperBot(service, **self.options)
        self.logged_in_once = False
        self.attempts = 0
        self.last_error = ""
        self._closing = asyncio.Event()

    def is_ready(self) -> bool:
        """True while the current bot is connected and ready."""
        return self.bot.is_ready()

    async def run(self) -> None:
        """Keep a bot running until ``close()``.

        Raises:
            discord.LoginFailure: the token was refused before any successful login.
            discord.PrivilegedIntentsRequired: likewise, a configuration error.
        """
        delay = self.backoff_first
        while not self._closing.is_set():
            bot = self.bot
            self.attempts += 1
            try:
                await bot.start(self._token)
                error = "the connection closed"
            except (discord.LoginFailure, discord.PrivilegedIntentsRequired) as exc:
                self.logged_in_once |= bot.user is not None
                if not self.logged_in_once:
                    raise
                error = f"{type(exc).__name__}: {exc}"
                delay = self.backoff_max
            except Exception as exc:  # Discord down, HTTP 5xx, a bug in a handler…
                error = f"{type(exc).__name__}: {exc}"
            self.logged_in_once |= bot.user is not None
            if bot.is_ready():
                delay = self.backoff_first  # it had been working: retry soon
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bot.close(), timeout=3.0)
            if self._closing.is_set():
                return
            self.last_error = error
            wait = delay * random.uniform(0.8, 1.0)
            log.warning("Discord bot stopped (%s); the engine keeps trading and storing alerts; "
                        "reconnecting in %.0f s", error, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=wait)
            delay = min(self.backoff_max, delay * 2)
            if not self._closing.is_set():
                self.bot = PaperBot(self.service, **self.options)

    async def close(self) -> None:
        """Stop reconnecting and close the current bot (its alert sink drains first)."""
        self._closing.set()
        await self.bot.close()
