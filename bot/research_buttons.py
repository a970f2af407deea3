"""Buttons of the research replies: Backtest best, Forward-test best, Monte Carlo.

``DynamicItem``s keep their target in the ``custom_id`` (``pb:best:bt:<study id>``,
``pb:best:fw:<study id>``, ``pb:mc:<backtest folder>``), so they keep working after a redeploy.
All three start CPU work or a run, so they need the allow lists (``bot.access``), and answer
only in the configured guilds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import discord

from bot import research_embeds
from bot.access import NotAllowed, actor, check_place, require_allowed, service_of
from bot.errors import reply_error
from engine.backtest_request import BacktestReport, BacktestRequest
from engine.errors import ServiceError
from engine.forward.engine import RunSpec
from engine.service import PaperService

CUSTOM_ID_LIMIT = 100


def _day(ms: int | None) -> str | None:
    return None if ms is None else \
        datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M")


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class _Guarded(discord.ui.DynamicItem[discord.ui.Button], template=r"pb:never"):
    """Guild guard and allow-list check shared by the research buttons."""

    action = "a research button"

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Clicks only from a configured guild (answered and audited otherwise)."""
        return await check_place(interaction, service_of(interaction))

    async def _allowed(self, interaction: discord.Interaction) -> bool:
        try:
            await require_allowed(interaction, service_of(interaction), self.action)
        except NotAllowed as exc:
            await reply_error(interaction, exc)
            return False
        return True


class _StudyButton(_Guarded, template=r"pb:best:never:(?P<study>[0-9]+)"):
    """A button acting on the best trial of a study (``<prefix>:<study id>``)."""

    prefix = "pb:best:never"
    label = ""
    style = discord.ButtonStyle.secondary

    def __init__(self, study_id: int) -> None:
        super().__init__(discord.ui.Button(label=self.label, style=self.style,
                                           custom_id=f"{self.prefix}:{study_id}"))
        self.study_id = study_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> _StudyButton:
        return cls(int(match["study"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        if not await self._allowed(interaction):
            return
        service = service_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            best = await service.research.study_best(self.study_id)
            await self.act(service, interaction, best.meta,
                           {k: _text(v) for k, v in best.params.items()})
        except ServiceError as exc:
            await reply_error(interaction, exc)

    async def act(self, service: PaperService, interaction: discord.Interaction,
                  meta: dict[str, Any], params: dict[str, str]) -> None:
        """Use the study's best ``params`` (texts); ``meta`` is the study's request."""
        raise NotImplementedError


class BacktestBestButton(_StudyButton, template=r"pb:best:bt:(?P<study>[0-9]+)"):
    """Backtests the best parameters of a study over the study's span."""

    action = "the Backtest best button"
    prefix, label, style = "pb:best:bt", "Backtest best", discord.ButtonStyle.primary

    async def act(self, service: PaperService, interaction: discord.Interaction,
                  meta: dict[str, Any], params: dict[str, str]) -> None:
        from bot.cogs.backtest import run_and_post  # the cog imports this module

        await run_and_post(service, interaction, BacktestRequest(
            strategy=meta["strategy"], symbol=meta["symbol"], timeframe=meta["timeframe"],
            exchange=meta["exchange"], start=_day(meta.get("start")), end=_day(meta.get("end")),
            balance=meta.get("balance"), fee_bps=meta["fees"][0], maker_fee_bps=meta["fees"][1],
            slippage_bps=meta["fees"][2], params=params))


class ForwardBestButton(_StudyButton, template=r"pb:best:fw:(?P<study>[0-9]+)"):
    """Starts a forward run with the best parameters of a study (alerts in this channel)."""

    action = "the Forward-test best button"
    prefix, label, style = "pb:best:fw", "Forward-test best", discord.ButtonStyle.success

    async def act(self, service: PaperService, interaction: discord.Interaction,
                  meta: dict[str, Any], params: dict[str, str]) -> None:
        spec = RunSpec(strategy=meta["strategy"], symbol=meta["symbol"],
                       timeframe=meta["timeframe"], balance=meta.get("balance"), params=params,
                       channel_id=interaction.channel_id, started_by=actor(interaction.user))
        service.check_run(spec)
        view = await service.start_run(spec)
        await interaction.edit_original_response(
            content=f"✅ Run `{view.id}` started with the best of study #{self.study_id}: "
                    f"{view.strategy} on {view.symbol} {view.timeframe}. Its alerts are posted "
                    "like those of /forward start.")


class MonteCarloButton(_Guarded, template=r"pb:mc:(?P<folder>[A-Za-z0-9_.-]+)"):
    """Monte Carlo of the backtest whose files are in ``out_dir/<folder>``."""

    action = "the Monte Carlo button"

    def __init__(self, folder: str) -> None:
        super().__init__(discord.ui.Button(label="Monte Carlo", emoji="🎲",
                                           style=discord.ButtonStyle.secondary,
                                           custom_id=f"pb:mc:{folder}"))
        self.folder = folder

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> MonteCarloButton:
        return cls(match["folder"])

    async def callback(self, interaction: discord.Interaction) -> None:
        if not await self._allowed(interaction):
            return
        await interaction.response.defer(thinking=True)
        try:
            report = await service_of(interaction).research.monte_carlo(self.folder)
        except ServiceError as exc:
            await reply_error(interaction, exc)
            return
        files = [discord.File(report.chart, filename="montecarlo.png")] if report.chart else []
        await interaction.followup.send(embed=research_embeds.monte_carlo(report), files=files)


def backtest_view(report: BacktestReport) -> Any:
    """The Monte Carlo button for a backtest reply (none without written files)."""
    if report.json_path is None or len(report.result.trades) < 2:
        return discord.utils.MISSING
    folder = report.json_path.parent.name
    if len(f"pb:mc:{folder}") > CUSTOM_ID_LIMIT or not re.fullmatch(r"[A-Za-z0-9_.-]+", folder):
        return discord.utils.MISSING
    view = discord.ui.View(timeout=None)
    view.add_item(MonteCarloButton(folder))
    return view


def study_view(study_id: int) -> discord.ui.View:
    """Backtest best and Forward-test best for an optimisation reply."""
    view = discord.ui.View(timeout=None)
    view.add_item(BacktestBestButton(study_id))
    view.add_item(ForwardBestButton(study_id))
    return view


#: every research button, for ``Client.add_dynamic_items``
BUTTONS = (BacktestBestButton, ForwardBestButton, MonteCarloButton)
