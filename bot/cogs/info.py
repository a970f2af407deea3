"""``/strategies``."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import embeds_views
from engine.service import PaperService


class InfoCog(commands.Cog):
    """Reference information."""

    def __init__(self, service: PaperService) -> None:
        self.service = service

    @app_commands.command(description="Strategies you can backtest and run, with parameters")
    @app_commands.guild_only()
    async def strategies(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(embed=embeds_views.strategies(
            self.service.strategies()))
