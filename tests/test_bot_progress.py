"""Progress edits of deferred replies: delayed, throttled, and never after the final answer."""

from __future__ import annotations

import asyncio

from bot.progress import ProgressReply


class FakeInteraction:
    """Records edits of the original response (all ProgressReply touches)."""

    def __init__(self) -> None:
        self.edits: list[str] = []

    async def edit_original_response(self, *, content: str) -> None:
        await asyncio.sleep(0.01)  # a network round trip
        self.edits.append(content)


async def test_quick_jobs_are_not_edited_and_long_ones_are_throttled():
    interaction = FakeInteraction()
    progress = ProgressReply(interaction, delay=0.2, interval=0.3)  # type: ignore[arg-type]
    progress.update("loading candles")  # too early: nothing shown
    await asyncio.sleep(0.25)
    for k in range(10):  # a burst: one edit, then quiet until the interval has passed
        progress.update(f"simulating 1,000 candles: {k * 10}%")
    await asyncio.sleep(0.35)
    progress.update("drawing charts")
    await progress.finish()
    progress.update("too late")
    await asyncio.sleep(0.05)
    assert len(interaction.edits) == 2
    assert interaction.edits[0].startswith("⏳ simulating 1,000 candles: 0%")
    assert interaction.edits[1].startswith("⏳ drawing charts")
