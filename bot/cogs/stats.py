"""``/stats``, ``/daily``, ``/weekly``, ``/monthly``, ``/performance``: statistics of the
forward runs' closed trades. Reading: open to every member. The service computes
(``engine.service_stats``); ``bot.embeds_stats`` formats."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import choices, embeds_stats
from data.symbols import quote_currency
from engine.service import PaperService


class StatsCog(commands.Cog):
    """Freqtrade-style statistics of closed trades."""

    def __init__(self, service: PaperService) -> None:
        self.service = service

    @app_commands.command(description="Wins/losses by exit reason, long vs short, streaks")
    @app_commands.describe(run="run id (default: every run)")
    @app_commands.autocomplete(run=choices.runs)
    @app_commands.guild_only()
    async def stats(self, interaction: discord.Interaction, run: str | None = None) -> None:
        view = await self.service.stats(run)
        await interaction.response.send_message(embed=embeds_stats.stats(view))

    async def _periods(self, interaction: discord.Interaction, period: str, run: str | None,
                       count: int) -> None:
        view = await self.service.period_stats(period, run, count)
        await interaction.response.send_message(embed=embeds_stats.periods(view))

    @app_commands.command(description="Realised PnL per UTC day")
    @app_commands.describe(run="run id (default: every run)", count="days (default 7)")
    @app_commands.autocomplete(run=choices.runs)
    @app_commands.guild_only()
    async def daily(self, interaction: discord.Interaction, run: str | None = None,
                    count: app_commands.Range[int, 1, 60] = 7) -> None:
        await self._periods(interaction, "day", run, count)

    @app_commands.command(description="Realised PnL per week (Monday to Sunday, UTC)")
    @app_commands.describe(run="run id (default: every run)", count="weeks (default 8)")
    @app_commands.autocomplete(run=choices.runs)
    @app_commands.guild_only()
    async def weekly(self, interaction: discord.Interaction, run: str | None = None,
                     count: app_commands.Range[int, 1, 60] = 8) -> None:
        await self._periods(interaction, "week", run, count)

    @app_commands.command(description="Realised PnL per calendar month (UTC)")
    @app_commands.describe(run="run id (default: every run)", count="months (default 6)")
    @app_commands.autocomplete(run=choices.runs)
    @app_commands.guild_only()
    async def monthly(self, interaction: discord.Interaction, run: str | None = None,
                      count: app_commands.Range[int, 1, 60] = 6) -> None:
        await self._periods(interaction, "month", run, count)

    @app_commands.command(description="Realised PnL per strategy and symbol, every run")
    @app_commands.guild_only()
    async def performance(self, interaction: discord.Interaction) -> None:
        rows = await self.service.performance()
        quotes = {quote_currency(r.symbol) for r in rows}
        await interaction.response.send_message(embed=embeds_stats.performance(
            rows, quotes.pop() if len(quotes) == 1 else ""))
