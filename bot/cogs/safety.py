"""``/panic`` (the kill switch) and ``/audit`` (who did what): allowed users only.

``/panic`` asks for confirmation, then pauses every running run and closes every open position
at market; the reply lists what was closed with the realised PnL. ``/audit`` answers only to
the person who asked (ephemeral).
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import choices, embeds, embeds_views
from bot.access import trader_only
from bot.confirm import panic_choices
from engine.service import PaperService


class SafetyCog(commands.Cog):
    """The kill switch and the audit log."""

    def __init__(self, service: PaperService) -> None:
        self.service = service

    @app_commands.command(description="Kill switch: pause every run, close every position")
    @app_commands.guild_only()
    @trader_only("/panic")
    async def panic(self, interaction: discord.Interaction) -> None:
        running, positions = await self.service.panic_preview()
        await interaction.response.send_message(
            embed=discord.Embed(
                title="🛑 Kill switch",
                description=f"Pause {running} running run{'s' * (running != 1)} "
                            f"and close {positions} open position"
                            f"{'s' * (positions != 1)} at market?",
                colour=embeds.RED),
            view=panic_choices(self.service, positions, running), ephemeral=True)

    @app_commands.command(description="Who did what: starts, stops, closes, refusals")
    @app_commands.describe(run="run id (default: every run)", limit="rows (default 20)")
    @app_commands.autocomplete(run=choices.runs)
    @app_commands.guild_only()
    @trader_only("/audit")
    async def audit(self, interaction: discord.Interaction, run: str | None = None,
                    limit: app_commands.Range[int, 1, 50] = 20) -> None:
        rows = await self.service.audit_log(run, limit)
        await interaction.response.send_message(embed=embeds_views.audit(rows, run), ephemeral=True)
