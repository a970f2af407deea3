"""The always-on process: the forward engine and the Discord bot in one asyncio loop.

``python -m bot`` and ``paperbot run`` call ``main``. Start-up: validate settings (a missing
``DISCORD_TOKEN`` stops here with one line), open the database, start the job worker, install
the SIGTERM/SIGINT handlers, resume stored runs and connect to Discord — the last two side by
side, so neither an exchange outage nor a Discord outage holds up the other. Discord trouble
never stops the engine (``bot.keeper.BotKeeper`` reconnects with backoff while runs trade and
their alerts wait in the outbox). SIGTERM/SIGINT: stop the runs (state saved), deliver pending
alerts briefly, close Discord, exit 0 — within ``engine.runtime.HARD_EXIT_AFTER`` seconds
whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.keeper import BotKeeper
from engine.allocator import limit_heap_fragmentation
from engine.errors import ServiceError, install_log_scrubber, scrub_secrets
from engine.runtime import Runtime, wait_for_stop
from engine.settings import Settings, SettingsError, load_settings
from engine.workers import JobPool

log = logging.getLogger(__name__)


def check_bot_settings(settings: Settings) -> str:
    """The Discord token (never logged).

    Raises:
        SettingsError: when ``DISCORD_TOKEN`` is missing.
    """
    if settings.discord_token is None or not settings.discord_token.get_secret_value():
        raise SettingsError("DISCORD_TOKEN is not set: create a bot in the Discord developer "
                            "portal and put its token in the environment (see docs/deploy.md)")
    return settings.discord_token.get_secret_value()


async def serve(settings: Settings, *, jobs: JobPool | None = None,
                client_options: dict[str, Any] | None = None,
                stop: asyncio.Event | None = None,
                on_start: Callable[[Runtime, BotKeeper], Awaitable[None]] | None = None,
                bot_backoff: tuple[float, float] = (2.0, 120.0),
                engine_options: dict[str, Any] | None = None) -> None:
    """Run engine and bot until SIGTERM/SIGINT.

    Tests pass ``stop`` (instead of signals), ``client_options`` for the discord client,
    ``on_start`` to get hold of the runtime and the bot keeper, and shorter backoffs.

    Raises:
        discord.LoginFailure: Discord refused the token at the first login.
    """
    token = check_bot_settings(settings)
    limit_heap_fragmentation()  # an always-on process: keep its RSS flat
    jobs = jobs or JobPool(processes=1)
    await jobs.start()
    try:
        async with Runtime(settings, jobs, **(engine_options or {})) as runtime:
            assert runtime.engine is not None and runtime.service is not None
            waiter = asyncio.create_task(stop.wait() if stop else wait_for_stop())
            resuming = asyncio.create_task(runtime.engine.resume_all(), name="resume")
            markets = asyncio.create_task(runtime.engine.preload_markets())
            keeper = BotKeeper(runtime.service, token, client_options, bot_backoff)
            bot_task = asyncio.create_task(keeper.run(), name="discord")
            if on_start is not None:
                await on_start(runtime, keeper)
            try:
                await asyncio.wait({bot_task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if bot_task.done() and bot_task.exception() is not None:
                    raise bot_task.exception()  # type: ignore[misc]  # token refused at boot
            finally:
                waiter.cancel()
                for task in (resuming, markets):
                    task.cancel()
                # runs first (their stop events reach the outbox), then alerts, then Discord
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(runtime.engine.shutdown(), timeout=4.0)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(keeper.close(), timeout=2.5)
                bot_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(bot_task, timeout=1.0)
    finally:
        jobs.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bot``; returns the exit status.

    Every problem at start (settings, token, storage, another instance on the database) is one
    ``error:`` line on stderr and status 2.
    """
    try:
        settings = load_settings()
        check_bot_settings(settings)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"error: {' '.join(scrub_secrets(problem).split())}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    discord.utils.setup_logging(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                                root=False)
    install_log_scrubber()
    try:
        asyncio.run(serve(settings))
    except discord.LoginFailure:
        print("error: Discord refused the token (DISCORD_TOKEN); reset it in the developer "
              "portal", file=sys.stderr)
        return 2
    except discord.PrivilegedIntentsRequired:
        print("error: Discord refused the bot's intents; paperbot needs none of the privileged "
              "ones, so check the application in the developer portal", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"error: {' '.join(scrub_secrets(str(exc)).split())}", file=sys.stderr)
        return 2
    return 0
