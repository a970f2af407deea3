"""``/optimize run|history``, ``/walkforward``, ``/lookahead``: research from Discord.

The work runs in the research job pool (``engine.research.service``): the bot process imports
neither Optuna nor Dask. Slow commands defer with an ephemeral "thinking…" reply whose
progress is edited every few seconds (trials done, best so far); the result is posted in the
channel. Running a study, a walk-forward or a look-ahead check needs the allow lists; the
study history is open to every member.
"""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import choices, research_embeds
from bot.access import trader_only
from bot.cogs.backtest import parse_params
from bot.progress import with_progress
from bot.research_buttons import study_view
from engine.backtest_request import BacktestRequest
from engine.research.optimize import OptimizeRequest
from engine.research.walkforward import WalkForwardRequest
from engine.service import PaperService

Objective = Literal["sharpe", "sortino", "calmar", "return", "profit_factor"]
Sampler = Literal["tpe", "random", "grid"]

_SEARCH_HELP = {
    "strategy": "strategy name", "symbol": "e.g. BTC/USDT", "timeframe": "base timeframe",
    "start": "first day, YYYY-MM-DD (UTC)", "end": "last day, YYYY-MM-DD (UTC), included",
    "space": "ranges, e.g. fast=5:50 slow=20:200:10 (default: the strategy's)",
    "objective": "what to maximise (default sharpe)",
    "min_trades": "trials with fewer trades are pruned",
    "sampler": "Optuna sampler (default tpe)",
    "params": "parameters held fixed, e.g. size_percent=50",
}


def _request(strategy: str, symbol: str, timeframe: str | None, start: str | None,
             end: str | None, params: str | None) -> BacktestRequest:
    return BacktestRequest(strategy=strategy, symbol=symbol, timeframe=timeframe, start=start,
                           end=end, params=parse_params(params), charts=False)


def _space(text: str | None) -> tuple[str, ...] | None:
    return tuple(text.split()) if text and text.strip() else None


@app_commands.guild_only()
class OptimizeCog(commands.GroupCog, group_name="optimize",
                  group_description="Optimise a strategy's parameters (Optuna studies)"):
    """``/optimize run`` and ``/optimize history``."""

    def __init__(self, service: PaperService) -> None:
        self.service = service
        super().__init__()

    @app_commands.command(name="run", description="Run (or resume) an optimisation study")
    @app_commands.describe(trials="trials (default 200)", study="study name: the same name "
                                                                "resumes it", **_SEARCH_HELP)
    @app_commands.autocomplete(strategy=choices.strategies, symbol=choices.symbols)
    @app_commands.choices(timeframe=choices.TIMEFRAMES)
    @trader_only("/optimize run")
    async def run(self, interaction: discord.Interaction, strategy: str, symbol: str,
                  timeframe: str | None = None, space: str | None = None,
                  objective: Objective = "sharpe",
                  trials: app_commands.Range[int, 1, 5000] = 200,
                  min_trades: app_commands.Range[int, 0, 100_000] = 20,
                  sampler: Sampler = "tpe", start: str | None = None, end: str | None = None,
                  study: str | None = None, params: str | None = None) -> None:
        request = OptimizeRequest(_request(strategy, symbol, timeframe, start, end, params),
                                  _space(space), objective, min_trades, trials, sampler, study)
        research = self.service.research
        research.check_optimize(request)  # bad input: an ephemeral answer at once
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await with_progress(
            interaction, lambda update: research.optimize(request, progress=update), interval=3.0)
        files = [discord.File(report.heatmap, filename="heatmap.png")] if report.heatmap else []
        await interaction.edit_original_response(
            content=f"✅ Study done: {report.ran_now} trials in {report.elapsed_s:.0f} s.")
        view = study_view(report.study_id) if report.best else discord.utils.MISSING
        await interaction.followup.send(embed=research_embeds.optimize(report), files=files,
                                        view=view)

    @app_commands.command(name="history", description="Stored optimisation studies")
    async def history(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        views = await self.service.research.studies()
        await interaction.followup.send(embed=research_embeds.studies(views))


class ResearchCog(commands.Cog):
    """``/walkforward`` and ``/lookahead``."""

    def __init__(self, service: PaperService) -> None:
        self.service = service

    @app_commands.command(name="walkforward",
                          description="Optimise on a train window, test on the next, roll")
    @app_commands.describe(train="train window, e.g. 90d, 12w, 720h",
                           test="test window, e.g. 30d", anchored="every train window starts "
                           "at the first candle", trials="trials per fold (default 50)",
                           **_SEARCH_HELP)
    @app_commands.autocomplete(strategy=choices.strategies, symbol=choices.symbols)
    @app_commands.choices(timeframe=choices.TIMEFRAMES)
    @app_commands.guild_only()
    @trader_only("/walkforward")
    async def walkforward(self, interaction: discord.Interaction, strategy: str, symbol: str,
                          timeframe: str | None = None, train: str = "90d", test: str = "30d",
                          anchored: bool = False, space: str | None = None,
                          objective: Objective = "sharpe",
                          trials: app_commands.Range[int, 1, 2000] = 50,
                          min_trades: app_commands.Range[int, 0, 100_000] = 5,
                          sampler: Sampler = "tpe", start: str | None = None,
                          end: str | None = None, params: str | None = None) -> None:
        request = WalkForwardRequest(_request(strategy, symbol, timeframe, start, end, params),
                                     _space(space), objective, min_trades, trials, sampler,
                                     train=train, test=test, anchored=anchored)
        research = self.service.research
        from engine.research.walkforward import check_walkforward

        check_walkforward(request)
        research.check_optimize(request.as_optimize())
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await with_progress(
            interaction, lambda update: research.walkforward(request, progress=update),
            interval=3.0)
        files = [discord.File(report.chart, filename="walkforward.png")] if report.chart else []
        await interaction.edit_original_response(
            content=f"✅ Walk-forward done: {len(report.folds)} folds in "
                    f"{report.elapsed_s:.0f} s.")
        await interaction.followup.send(embed=research_embeds.walkforward(report), files=files)

    @app_commands.command(name="lookahead",
                          description="Check a strategy for look-ahead with truncated backtests")
    @app_commands.describe(strategy="strategy name", symbol="e.g. BTC/USDT",
                           timeframe="base timeframe", start="first day, YYYY-MM-DD (UTC)",
                           end="last day, YYYY-MM-DD (UTC), included",
                           params="strategy parameters, e.g. fast=10 slow=50",
                           cuts="truncated backtests (default 10)")
    @app_commands.autocomplete(strategy=choices.strategies, symbol=choices.symbols)
    @app_commands.choices(timeframe=choices.TIMEFRAMES)
    @app_commands.guild_only()
    @trader_only("/lookahead")
    async def lookahead(self, interaction: discord.Interaction, strategy: str, symbol: str,
                        timeframe: str | None = None, start: str | None = None,
                        end: str | None = None, params: str | None = None,
                        cuts: app_commands.Range[int, 1, 100] = 10) -> None:
        request = _request(strategy, symbol, timeframe, start, end, params)
        self.service.research.check(request)
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await with_progress(
            interaction, lambda update: self.service.research.lookahead(request, cuts,
                                                                         progress=update))
        await interaction.edit_original_response(content="✅ Look-ahead check done.")
        await interaction.followup.send(embed=research_embeds.lookahead(report))
