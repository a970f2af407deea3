"""Missing candles on a phone: what is missing, and a **Fetch candles** button.

A backtest whose candles are not cached answers (ephemerally) with the symbol, timeframe,
exchange and the span it needs, warm-up included, and — for members allowed to change things,
when the server may reach the exchange — a button that fetches them, shows the progress in the
same message, then runs the backtest and posts it. No shell command, no server path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

from bot.access import NotAllowed, require_allowed
from bot.embeds import ORANGE
from bot.errors import reply_error
from bot.progress import with_progress
from data.timeframes import timeframe_ms
from engine import formatting as fmt
from engine.errors import MissingCandles, ServiceError
from engine.service import PaperService

#: After this long the button stops answering (the prompt is ephemeral anyway), seconds.
FETCH_TIMEOUT_S = 900


def span_text(missing: MissingCandles) -> str:
    """``"2025-05-19 → 2025-05-20 23:59 UTC (about 1,440 candles)"``."""
    count = max(1, (missing.end - missing.start) // timeframe_ms(missing.timeframe))
    return (f"{fmt.iso(missing.start)} → {fmt.iso(missing.end)} UTC "
            f"(about {count:,} candles)")


def missing_embed(missing: MissingCandles, can_fetch: bool) -> discord.Embed:
    """What is missing, and what can be done about it."""
    embed = discord.Embed(
        title="No candles for this backtest",
        description=f"No {missing.symbol} {missing.timeframe} candles from {missing.exchange} "
                    f"are stored for **{span_text(missing)}**, warm-up included.",
        colour=ORANGE)
    if missing.offline:
        embed.add_field(name="Fetching is off", value="This server never contacts the "
                        "exchange (PAPERBOT_OFFLINE); pick a span or symbol it has.")
    elif can_fetch:
        embed.add_field(name="Fetch them?", value="Press **Fetch candles**: they are "
                        "downloaded from the exchange, then the backtest runs.")
    return embed


class FetchView(discord.ui.View):
    """The **Fetch candles** button under a missing-candles answer."""

    def __init__(self, service: PaperService, missing: MissingCandles,
                 then: Callable[[discord.Interaction], Awaitable[None]]) -> None:
        super().__init__(timeout=FETCH_TIMEOUT_S)
        self.service = service
        self.missing = missing
        self.then = then

    @discord.ui.button(label="Fetch candles", style=discord.ButtonStyle.primary, emoji="⬇️")
    async def fetch(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        try:
            await require_allowed(interaction, self.service, "Fetch candles")
        except NotAllowed as exc:
            await reply_error(interaction, exc)
            return
        self.stop()
        await interaction.response.defer()
        m = self.missing
        await interaction.edit_original_response(
            content=f"⏳ fetching {m.symbol} {m.timeframe} from {m.exchange}: {span_text(m)}",
            embed=None, view=None)
        try:
            fetched = await with_progress(
                interaction, lambda update: self.service.fetch_missing(m, progress=update),
                delay=0.3, interval=1.0)
        except ServiceError as exc:
            await interaction.edit_original_response(content=None, embed=discord.Embed(
                description=f"⚠️ {exc}", colour=ORANGE))
            return
        await interaction.edit_original_response(
            content=f"✅ fetched {fetched:,} {m.symbol} {m.timeframe} candles; running the "
                    "backtest…", embed=None)
        await self.then(interaction)

