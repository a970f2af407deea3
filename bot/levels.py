"""Moving a position's levels from Discord: the **Stop → break-even** alert button (with a
confirmation) and ``/position stop|target``.

Both need an allowed user (``bot.access``) who owns the run or has a manager role; the new
level is checked against the last price (a stop on the wrong side is refused ephemerally, as
is break-even once the price is back through the entry) and is in force from the next candle.
"""

from __future__ import annotations

import math

import discord
from discord import app_commands
from discord.ext import commands

from bot import choices, embeds, embeds_views
from bot.access import actor, require_owner, trader_only
from bot.buttons import PositionButton
from bot.confirm import break_even_choices
from engine.errors import ServiceError
from engine.service import PaperService


class BreakEvenButton(PositionButton,
                      template=r"pb:be:(?P<run>[0-9a-f]+):(?P<position>[0-9]+)"):
    """**Stop → break-even** on an open-trade alert (survives redeploys: state in the id)."""

    prefix, label, style = "pb:be", "Stop → break-even", discord.ButtonStyle.primary
    action, verb = "the break-even button", "change"

    async def callback(self, interaction: discord.Interaction) -> None:
        service = await self.checked_service(interaction)
        if service is None:
            return
        await interaction.response.send_message(embed=discord.Embed(
            title=f"Move the stop of #{self.position_id} (run {self.run_id}) to its entry?",
            description="From the next candle a fall back to the entry price closes it "
                        "without a loss (fees aside).", colour=embeds.ORANGE),
            view=break_even_choices(service, self.run_id, self.position_id), ephemeral=True)


def parse_level(text: str) -> float:
    """A price typed in Discord: ``104120.5``, ``104,120.50``, or ``off``/``none`` (nan).

    Raises:
        ServiceError: for anything else.
    """
    cleaned = text.strip().lower().replace(",", "").replace("_", "")
    if cleaned in ("off", "none", "remove", "-"):
        return math.nan
    try:
        value = float(cleaned)
    except ValueError:
        raise ServiceError(f"{text[:40]!r} is not a price; give a number like 104120.5, or "
                           "off to remove the level") from None
    if not (math.isfinite(value) and value > 0):
        raise ServiceError(f"a price must be a positive number, got {text[:40]!r}")
    return value


@app_commands.guild_only()
class PositionCog(commands.GroupCog, group_name="position",
                  group_description="Move the stop-loss or take-profit of an open position"):
    """``/position stop`` and ``/position target``."""

    def __init__(self, service: PaperService) -> None:
        self.service = service
        super().__init__()

    async def _set(self, interaction: discord.Interaction, run: str, position: int,
                   what: str, price: str) -> None:
        level = parse_level(price)
        await require_owner(interaction, self.service, run, "change")
        # the move waits for the run's engine: answer within Discord's 3 s first (an error
        # then replaces this ephemeral "thinking" reply)
        await interaction.response.defer(ephemeral=True, thinking=True)
        kwargs = {"stop_loss": level} if what == "stop" else {"take_profit": level}
        view = await self.service.update_position(run, position, actor(interaction.user),
                                                  **kwargs)
        said = "removed" if math.isnan(level) else f"set to {level:,.2f}"
        name = "Stop-loss" if what == "stop" else "Take-profit"
        await interaction.edit_original_response(
            embed=embeds_views.level_reply(view, f"{name} {said}"))

    @app_commands.command(name="stop", description="Set (or remove: off) a position's stop-loss")
    @app_commands.describe(run="run id", position="position id",
                           price="new stop-loss price, or off")
    @app_commands.autocomplete(run=choices.runs, position=choices.positions)
    @trader_only("/position stop")
    async def stop(self, interaction: discord.Interaction, run: str,
                   position: app_commands.Range[int, 1], price: str) -> None:
        await self._set(interaction, run, position, "stop", price)

    @app_commands.command(name="target",
                          description="Set (or remove: off) a position's take-profit")
    @app_commands.describe(run="run id", position="position id",
                           price="new take-profit price, or off")
    @app_commands.autocomplete(run=choices.runs, position=choices.positions)
    @trader_only("/position target")
    async def target(self, interaction: discord.Interaction, run: str,
                     position: app_commands.Range[int, 1], price: str) -> None:
        await self._set(interaction, run, position, "target", price)
