"""``/backtest``: metrics embed, price and equity charts, trades CSV."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import choices, embeds
from bot.access import trader_only
from bot.progress import ProgressReply
from bot.research_buttons import backtest_view
from engine.backtest_request import BacktestRequest
from engine.errors import ServiceError
from engine.risk import ProtectionError, parse_pairs
from engine.risk.config import parse_protections
from engine.service import PaperService
from engine.strategy import ParamError, parse_param_pairs


def parse_params(text: str | None) -> dict[str, str]:
    """``"fast=5 slow=20"`` → dict; a malformed pair is a ``ServiceError``."""
    try:
        return parse_param_pairs(text or "")
    except ParamError as exc:
        raise ServiceError(str(exc)) from None


def parse_protect(text: str | None) -> dict[str, str]:
    """``"daily_loss_limit_pct=3 cooldown=5"`` → dict, each value checked; a malformed pair,
    an unknown protection or a bad value is a ``ServiceError`` naming ``protect``."""
    try:
        pairs = parse_pairs(text or "", "protect")
        parse_protections(pairs, "protect")
    except ProtectionError as exc:
        raise ServiceError(str(exc)) from None
    return pairs


class BacktestCog(commands.Cog):
    """Backtests from Discord; the work runs in the job pool, never on the event loop."""

    def __init__(self, service: PaperService) -> None:
        self.service = service

    @app_commands.command(name="backtest",
                          description="Backtest a strategy on cached candles: metrics + charts")
    @app_commands.describe(strategy="strategy name", symbol="e.g. BTC/USDT",
                           timeframe="base timeframe", start="first day, YYYY-MM-DD (UTC)",
                           end="last day, YYYY-MM-DD (UTC), included",
                           balance="starting balance in quote currency (default 10,000)",
                           params="strategy parameters, e.g. fast=10 slow=50",
                           protect="risk guards, e.g. daily_loss_limit_pct=3 cooldown=5")
    @app_commands.autocomplete(strategy=choices.strategies, symbol=choices.symbols)
    @app_commands.choices(timeframe=choices.TIMEFRAMES)
    @app_commands.guild_only()
    @trader_only("/backtest")
    async def backtest(self, interaction: discord.Interaction, strategy: str, symbol: str,
                       timeframe: str, start: str | None = None, end: str | None = None,
                       balance: app_commands.Range[float, 1.0, 1e12] | None = None,
                       params: str | None = None, protect: str | None = None) -> None:
        request = BacktestRequest(strategy=strategy, symbol=symbol, timeframe=timeframe,
                                  start=start, end=end, balance=balance,
                                  params=parse_params(params), protect=parse_protect(protect))
        self.service.check_backtest(request)  # bad input: an ephemeral answer at once
        # the "thinking…" reply is ephemeral: progress and errors only bother the invoker
        await interaction.response.defer(ephemeral=True, thinking=True)
        progress = ProgressReply(interaction)
        try:
            report = await self.service.backtest(request, progress=progress.update)
        finally:
            await progress.finish()
        files = [discord.File(report.charts["price"], filename="price.png"),
                 discord.File(report.charts["equity"], filename="equity.png")]
        if report.trades_csv is not None:
            files.append(discord.File(report.trades_csv, filename="trades.csv"))
        await interaction.edit_original_response(
            content=f"✅ Backtest done in {report.elapsed_s:.1f} s — results posted below.")
        await interaction.followup.send(embeds=embeds.backtest(report), files=files,
                                        view=backtest_view(report))  # Monte Carlo button
