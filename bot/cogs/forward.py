"""``/forward start|stop|list``: forward runs.

The group is guild-only as a whole (``guild_only`` on the class: Discord ignores it on
subcommands); stopping someone else's run needs a manager role (``bot.access``).

Starting or stopping a run posts one message in the channel: its alert (run started / stopped,
with the details), delivered like every alert (``bot.alerts``). The command's own reply is
ephemeral: only the member who typed it sees it, saying where the alert went.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import choices, embeds, embeds_views
from bot.access import actor, require_owner, trader_only
from bot.cogs.backtest import parse_params, parse_protect
from bot.confirm import stop_choices
from bot.routing import AlertRouter
from engine import formatting as fmt
from engine.forward.engine import RunSpec
from engine.service import PaperService


@app_commands.guild_only()
class ForwardCog(commands.GroupCog, group_name="forward",
                 group_description="Forward runs: paper trading on live candles"):
    """Start, stop and list forward runs."""

    def __init__(self, service: PaperService) -> None:
        self.service = service
        super().__init__()

    @app_commands.command(name="start", description="Start paper-trading a strategy live")
    @app_commands.describe(strategy="strategy name", symbol="e.g. BTC/USDT (BTC/USDT:USDT = perp)",
                           timeframe="base timeframe (default: the strategy's)",
                           balance="starting balance in quote currency (default 10,000)",
                           params="strategy parameters, e.g. fast=10 slow=50",
                           protect="risk guards, e.g. daily_loss_limit_pct=3 cooldown=5",
                           leverage="perpetuals: notional / margin, 1 (default) to the "
                                    "symbol's maximum; spot takes 1 only")
    @app_commands.autocomplete(strategy=choices.strategies, symbol=choices.symbols)
    @app_commands.choices(timeframe=choices.TIMEFRAMES)
    @trader_only("/forward start")
    async def start(self, interaction: discord.Interaction, strategy: str, symbol: str,
                    timeframe: str | None = None,
                    balance: app_commands.Range[float, 1.0, 1e12] | None = None,
                    params: str | None = None, protect: str | None = None,
                    leverage: float | None = None) -> None:
        spec = RunSpec(strategy=strategy, symbol=symbol, timeframe=timeframe, balance=balance,
                       params=parse_params(params), channel_id=interaction.channel_id,
                       started_by=actor(interaction.user), protect=parse_protect(protect),
                       leverage=leverage)
        self.service.check_run(spec)
        await interaction.response.defer(ephemeral=True, thinking=True)  # warm-up takes a while
        view = await self.service.start_run(spec)
        await interaction.edit_original_response(
            content=f"✅ Run `{view.id}` started: {view.strategy} on {view.symbol} "
                    f"{view.timeframe} · {view.exchange}"
                    + (f" · leverage {fmt.leverage(view.leverage)}" if view.shows_leverage
                       else "") + f". {await self._where(interaction, view.id)}")

    @app_commands.command(name="stop", description="Stop a forward run for good")
    @app_commands.describe(run="run id")
    @app_commands.autocomplete(run=choices.runs)
    @trader_only("/forward stop")
    async def stop(self, interaction: discord.Interaction, run: str) -> None:
        await require_owner(interaction, self.service, run, "stop")
        holding = await self.service.positions(run)
        if holding:  # never strand a position: ask what to do with them
            count = len(holding)
            await interaction.response.send_message(
                embed=discord.Embed(
                    title=f"Run {run} holds {count} open position{'s' * (count != 1)}",
                    description="Close them at market and stop, or stop new entries and "
                                "keep managing their exits (the run is paused)?",
                    colour=embeds.ORANGE),
                view=stop_choices(self.service, run, count), ephemeral=True)
            return
        view = await self.service.stop_run(run, actor(interaction.user))
        await interaction.response.send_message(
            content=f"⏹️ Run `{view.id}` stopped. {await self._where(interaction, view.id)}",
            ephemeral=True)

    async def _where(self, interaction: discord.Interaction, run_id: str) -> str:
        """Where the run's alerts are posted, for the ephemeral reply (the alert router's own
        rules: a command typed elsewhere still names the run's channel)."""
        record = await self.service.run_record(run_id)
        router = AlertRouter(interaction.client, self.service)
        if router.uses_thread("trade", record):
            return f"Its alerts go to its own thread in <#{router.channel_id('trade', record)}>."
        return f"Its alerts are posted in <#{router.channel_id('ops', record)}>."

    @app_commands.command(name="pause",
                          description="Stop a run's entries; its exits keep being managed")
    @app_commands.describe(run="run id")
    @app_commands.autocomplete(run=choices.runs)
    @trader_only("/forward pause")
    async def pause(self, interaction: discord.Interaction, run: str) -> None:
        await require_owner(interaction, self.service, run, "pause")
        view = await self.service.pause_run(run, actor(interaction.user))
        await interaction.response.send_message(
            embed=embeds_views.runs([view], "Run paused · exits still managed"))

    @app_commands.command(name="resume",
                          description="Take entries again (a paused, stopped or failed run)")
    @app_commands.describe(run="run id")
    @app_commands.autocomplete(run=choices.runs)
    @trader_only("/forward resume")
    async def resume(self, interaction: discord.Interaction, run: str) -> None:
        await require_owner(interaction, self.service, run, "resume")
        await interaction.response.defer(thinking=True)  # a stopped run is rebuilt first
        view = await self.service.resume_run(run, actor(interaction.user))
        await interaction.edit_original_response(embed=embeds_views.runs([view], "Run resumed"))

    @app_commands.command(name="list", description="Forward runs with equity and positions")
    async def list_(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(embed=embeds_views.runs(await self.service.runs()))
