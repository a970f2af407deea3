"""The discord.py client: cogs, command sync, the tree-level error handler, alert delivery."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.alerts import AlertSink
from bot.buttons import ChartButton, CloseButton
from bot.cogs.backtest import BacktestCog
from bot.cogs.forward import ForwardCog
from bot.cogs.info import InfoCog
from bot.cogs.portfolio import PortfolioCog
from bot.errors import reply_error
from engine.service import PaperService

log = logging.getLogger(__name__)


class PaperBot(commands.Bot):
    """Slash commands and alerts over one ``PaperService``.

    Args:
        service: the application service (with the store and the forward engine).
        **options: passed to ``discord.Client`` (tests pass ``guild_ready_timeout``).
    """

    def __init__(self, service: PaperService, **options: Any) -> None:
        intents = discord.Intents.default()
        super().__init__(command_prefix=commands.when_mentioned, intents=intents,
                         help_command=None, **options)
        self.service = service
        self.alerts = AlertSink(self, service)
        self.tree.on_error = self.on_app_command_error

    async def setup_hook(self) -> None:
        """Load the cogs, register the alert buttons, sync the commands, start alerts."""
        for cog in (BacktestCog, ForwardCog, PortfolioCog, InfoCog):
            await self.add_cog(cog(self.service))
        self.add_dynamic_items(CloseButton, ChartButton)
        guild_id = self.service.settings.guild_id
        if guild_id:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        else:
            synced = await self.tree.sync()
        log.info("synced %d slash commands%s", len(synced),
                 f" to guild {guild_id}" if guild_id else " globally")
        self.alerts.start()

    async def on_app_command_error(self, interaction: discord.Interaction,
                                   error: app_commands.AppCommandError) -> None:
        """Every command error becomes an ephemeral reply."""
        await reply_error(interaction, error)

    async def close(self) -> None:
        """Deliver pending alerts (bounded), then disconnect."""
        await self.alerts.stop()
        await super().close()
