"""The discord.py client: cogs, command sync, the guarded command tree, alert delivery."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.access import check_place
from bot.alerts import AlertSink
from bot.buttons import ChartButton, CloseButton
from bot.cogs.backtest import BacktestCog, HistorySelect
from bot.cogs.forward import ForwardCog
from bot.cogs.info import InfoCog
from bot.cogs.portfolio import PortfolioCog
from bot.cogs.research import OptimizeCog, ResearchCog
from bot.cogs.safety import SafetyCog
from bot.cogs.stats import StatsCog
from bot.errors import reply_error
from bot.levels import BreakEvenButton, PositionCog
from bot.pager import PageButton
from bot.research_buttons import BUTTONS as RESEARCH_BUTTONS
from engine.service import PaperService

log = logging.getLogger(__name__)

#: where slash commands may be used, whatever the registration: guilds only, never DMs
GUILD_CONTEXT = app_commands.AppCommandContext(guild=True, dm_channel=False,
                                               private_channel=False)


class GuardedTree(app_commands.CommandTree):
    """Command tree that refuses commands and autocomplete from DMs and unconfigured guilds."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """The runtime guard of ``bot.access.check_place`` (it answers the refusal itself)."""
        return await check_place(interaction, self.client.service)  # type: ignore[attr-defined]


class PaperBot(commands.Bot):
    """Slash commands and alerts over one ``PaperService``.

    Args:
        service: the application service (with the store and the forward engine).
        **options: passed to ``discord.Client`` (tests pass ``guild_ready_timeout``).
    """

    def __init__(self, service: PaperService, **options: Any) -> None:
        intents = discord.Intents.default()
        super().__init__(command_prefix=commands.when_mentioned, intents=intents,
                         help_command=None, tree_cls=GuardedTree,
                         allowed_contexts=GUILD_CONTEXT, **options)
        self.service = service
        self.alerts = AlertSink(self, service)
        self.tree.on_error = self.on_app_command_error

    async def setup_hook(self) -> None:
        """Load the cogs, register the alert buttons, sync the commands, start alerts."""
        for cog in (BacktestCog, ForwardCog, PortfolioCog, PositionCog, SafetyCog, StatsCog,
                    InfoCog, OptimizeCog, ResearchCog):
            await self.add_cog(cog(self.service))
        self.add_dynamic_items(CloseButton, ChartButton, BreakEvenButton, PageButton,
                               HistorySelect, *RESEARCH_BUTTONS)
        await self.sync_commands()
        self.alerts.start()

    async def sync_commands(self) -> None:
        """Register the slash commands with Discord.

        With ``PAPERBOT_GUILD_ID`` set they are synced to each listed guild (instant) and the
        global set is synced empty, so stale global commands disappear everywhere else. Without
        it they are global, usable in guilds only (``GUILD_CONTEXT``). A guild that refuses the
        sync (the bot is not in it, or lacks the ``applications.commands`` scope) is logged and
        skipped.
        """
        guild_ids = self.service.settings.guild_ids
        if not guild_ids:
            synced = await self.tree.sync()
            log.info("synced %d slash commands globally (guilds only, no DMs)", len(synced))
            return
        for guild_id in guild_ids:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            try:
                synced = await self.tree.sync(guild=guild)
            except discord.HTTPException as exc:
                log.error("could not sync slash commands to guild %d (is the bot in it, invited "
                          "with the applications.commands scope?): %s", guild_id, exc)
                continue
            log.info("synced %d slash commands to guild %d", len(synced), guild_id)
        self.tree.clear_commands(guild=None)
        await self.tree.sync()  # an empty global set: commands exist only in those guilds
        log.info("cleared the global slash commands")

    async def on_app_command_error(self, interaction: discord.Interaction,
                                   error: app_commands.AppCommandError) -> None:
        """Every command error becomes an ephemeral reply."""
        await reply_error(interaction, error)

    async def close(self) -> None:
        """Deliver pending alerts (bounded), then disconnect."""
        await self.alerts.stop()
        await super().close()
