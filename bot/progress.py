"""Progress of a long job shown by editing the deferred reply (at most every 1.5 s)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import discord

T = TypeVar("T")


class ProgressReply:
    """Throttled edits of ``interaction``'s deferred response with short status texts.

    The first edit waits ``delay`` seconds (a quick job finishes without any), later ones come
    at most every ``interval`` seconds; ``finish`` waits for an edit in flight so the final
    answer always lands last.
    """

    def __init__(self, interaction: discord.Interaction, delay: float = 0.5,
                 interval: float = 1.5) -> None:
        self.interaction = interaction
        self.started = time.monotonic()
        self.delay = delay
        self.interval = interval
        self.last_edit = 0.0
        self.task: asyncio.Task | None = None
        self.closed = False

    def update(self, text: str) -> None:
        """Called with each status text (on the event loop)."""
        now = time.monotonic()
        if self.closed or now - self.started < self.delay or now - self.last_edit < self.interval:
            return
        if self.task is not None and not self.task.done():
            return
        self.last_edit = now
        self.task = asyncio.create_task(self._edit(f"⏳ {text} ({now - self.started:.0f} s)"))

    async def _edit(self, content: str) -> None:
        with contextlib.suppress(discord.HTTPException):
            await self.interaction.edit_original_response(content=content)

    async def finish(self) -> None:
        """Stop editing; wait for an edit still in flight."""
        self.closed = True
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task


async def with_progress(interaction: discord.Interaction,
                        job: Callable[[Callable[[str], None]], Awaitable[T]], *,
                        delay: float = 0.5, interval: float = 1.5) -> T:
    """Run ``job(progress)`` while its status texts edit the deferred reply (``ProgressReply``);
    returns what the job returns and re-raises what it raises, the last edit done either way."""
    progress = ProgressReply(interaction, delay, interval)
    try:
        return await job(progress.update)
    finally:
        await progress.finish()
