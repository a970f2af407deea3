"""``/positions``, ``/trades``, ``/pnl`` (everyone) and ``/close`` (owner or manager)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import choices, embeds, embeds_stats, embeds_views
from bot.access import require_owner, trader_only
from bot.confirm import close_all_choices, close_choices, close_embed
from bot.pager import page_buttons
from engine.errors import ServiceError
from engine.service import PaperService


class PortfolioCog(commands.Cog):
    """What the forward runs hold and made."""

    def __init__(self, service: PaperService) -> None:
        self.service = service

    @app_commands.command(description="Open positions with mark price, unrealised PnL, SL/TP")
    @app_commands.describe(run="run id (default: every running run)")
    @app_commands.autocomplete(run=choices.runs)
    @app_commands.guild_only()
    async def positions(self, interaction: discord.Interaction, run: str | None = None) -> None:
        views = await self.service.positions(run)
        await interaction.response.send_message(embed=embeds_views.positions(views))

    @app_commands.command(description="Closed trades, newest first, 10 a page")
    @app_commands.describe(run="run id (default: every run)", page="page to open (default 1)")
    @app_commands.autocomplete(run=choices.runs)
    @app_commands.guild_only()
    async def trades(self, interaction: discord.Interaction, run: str | None = None,
                     page: app_commands.Range[int, 1] = 1) -> None:
        result = await self.service.trades_page(run, page)
        view = page_buttons(result)
        await interaction.response.send_message(embed=embeds_stats.trades_page(result),
                                                **({"view": view} if view else {}))

    @app_commands.command(description="Realised/unrealised PnL, equity, win rate, max drawdown")
    @app_commands.describe(run="run id (default: every run, with their sums)")
    @app_commands.autocomplete(run=choices.runs)
    @app_commands.guild_only()
    async def pnl(self, interaction: discord.Interaction, run: str | None = None) -> None:
        summary = await self.service.pnl_summary(run)
        await interaction.response.send_message(embed=embeds_stats.pnl_summary(summary))

    @app_commands.command(description="Close a position (or all of a run's) at market")
    @app_commands.describe(run="run id", position="position id, or all")
    @app_commands.autocomplete(run=choices.runs, position=choices.positions_or_all)
    @app_commands.guild_only()
    @trader_only("/close")
    async def close(self, interaction: discord.Interaction, run: str, position: str) -> None:
        await require_owner(interaction, self.service, run, "close")
        views = await self.service.positions(run)
        if position.strip().lower() == "all":
            if not views:
                raise ServiceError(f"run {run} holds no open position")
            await interaction.response.send_message(
                embed=discord.Embed(title=f"Close all {len(views)} positions of run {run}?",
                                    description="Paper market exits at the last price "
                                                "(slippage and taker fee applied).",
                                    colour=embeds.ORANGE),
                view=close_all_choices(self.service, run, len(views)), ephemeral=True)
            return
        try:
            position_id = int(position.strip().lstrip("#"))
        except ValueError:
            raise ServiceError(f"position must be a position id or all, got "
                               f"{position[:40]!r}") from None
        await self._confirm_close(interaction, run, position_id, views)

    async def _confirm_close(self, interaction: discord.Interaction, run: str, position: int,
                             views: list) -> None:
        if not any(v.id == position for v in views):
            ids = ", ".join(f"#{v.id}" for v in views) or "none"
            raise ServiceError(f"run {run} has no open position #{position}; open: {ids}")
        await interaction.response.send_message(
            embed=close_embed(run, position), view=close_choices(self.service, run, position),
            ephemeral=True)
