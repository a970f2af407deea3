"""Buttons on trade alerts: Close (with confirmation) and Chart.

They are ``DynamicItem``s: the run and position live in the ``custom_id``
(``pb:close:<run>:<position>``), so buttons on old alerts keep working after a redeploy.
Every click passes the guild guard of ``bot.access.check_place`` first. Chart is open to every
member (reading); Close and its confirmation need the allow lists and, on someone else's run, a
manager role.
"""

from __future__ import annotations

import re

import discord

from bot import embeds, embeds_views
from bot.access import NotAllowed, actor, check_place, require_allowed, require_owner
from bot.errors import fit_text, reply_error
from engine import formatting as fmt
from engine.errors import ServiceError
from engine.service import PaperService
from engine.types import Trade


def _service(interaction: discord.Interaction) -> PaperService:
    return interaction.client.service  # type: ignore[attr-defined]


class ConfirmClose(discord.ui.View):
    """Ephemeral "really close?" prompt: Confirm runs a paper market exit, Cancel does nothing."""

    def __init__(self, service: PaperService, run_id: str, position_id: int,
                 who: str) -> None:
        super().__init__(timeout=120)
        self.service = service
        self.run_id = run_id
        self.position_id = position_id
        self.who = who

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Clicks only from a configured guild (answered and audited otherwise)."""
        return await check_place(interaction, self.service)

    @discord.ui.button(label="Close at market", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction,
                      button: discord.ui.Button) -> None:
        try:
            await require_allowed(interaction, self.service, "/close")
            await require_owner(interaction, self.service, self.run_id, "close")
            trade = await self.service.close_position(self.run_id, self.position_id, self.who)
        except (ServiceError, NotAllowed) as exc:
            await interaction.response.edit_message(
                embed=discord.Embed(description=fit_text(f"⚠️ {exc}"), colour=embeds.ORANGE),
                view=None)
            return
        await interaction.response.edit_message(embed=embeds_views.closed_reply(trade), view=None)
        self.stop()

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction,
                     button: discord.ui.Button) -> None:
        await interaction.response.edit_message(
            embed=discord.Embed(description="Nothing was closed.", colour=embeds.GREY),
            view=None)
        self.stop()


def confirm_embed(run_id: str, position_id: int) -> discord.Embed:
    """The question asked before a manual close."""
    return discord.Embed(title=f"Close position #{position_id} of run {run_id}?",
                         description="A paper market exit at the last price (slippage and "
                                     "taker fee applied).", colour=embeds.ORANGE)


class PositionButton(discord.ui.DynamicItem[discord.ui.Button],
                     template=r"pb:base:(?P<run>[0-9a-f]+):(?P<position>[0-9]+)"):
    """A button acting on one position of a run, its target kept in the ``custom_id``
    (``<prefix>:<run>:<position>``) so it keeps working after a redeploy.

    Subclasses give their own ``template`` (same groups), ``prefix``, ``label`` and
    ``style``; those that change something also ``action`` (named in a refusal) and ``verb``
    (the ownership check's word). Clicks pass the guild guard first.
    """

    prefix = "pb:base"
    label = ""
    style = discord.ButtonStyle.secondary
    action = ""
    verb = ""

    def __init__(self, run_id: str, position_id: int) -> None:
        super().__init__(discord.ui.Button(label=self.label, style=self.style,
                                           custom_id=f"{self.prefix}:{run_id}:{position_id}"))
        self.run_id = run_id
        self.position_id = position_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> PositionButton:
        return cls(match["run"], int(match["position"]))

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Clicks only from a configured guild (answered and audited otherwise)."""
        return await check_place(interaction, _service(interaction))

    async def checked_service(self, interaction: discord.Interaction) -> PaperService | None:
        """The service when the clicker is allowed and owns the run (or manages); else the
        refusal is answered (ephemeral, audited) and None returned."""
        service = _service(interaction)
        try:
            await require_allowed(interaction, service, self.action)
            await require_owner(interaction, service, self.run_id, self.verb)
        except (NotAllowed, ServiceError) as exc:
            await reply_error(interaction, exc)
            return None
        return service


class CloseButton(PositionButton, template=r"pb:close:(?P<run>[0-9a-f]+):(?P<position>[0-9]+)"):
    """Close button on an open-trade alert."""

    prefix, label, style = "pb:close", "Close", discord.ButtonStyle.danger
    action, verb = "the Close button", "close"

    async def callback(self, interaction: discord.Interaction) -> None:
        service = await self.checked_service(interaction)
        if service is None:
            return
        view = ConfirmClose(service, self.run_id, self.position_id, actor(interaction.user))
        await interaction.response.send_message(
            embed=confirm_embed(self.run_id, self.position_id), view=view, ephemeral=True)


class ChartButton(PositionButton, template=r"pb:chart:(?P<run>[0-9a-f]+):(?P<position>[0-9]+)"):
    """Chart button on an open-trade alert: recent candles with the position's levels.

    Reading is open: any member of a configured guild may press it.
    """

    prefix, label = "pb:chart", "Chart"

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            path = await _service(interaction).position_chart(self.run_id, self.position_id)
        except ServiceError as exc:
            await reply_error(interaction, exc)
            return
        await interaction.followup.send(
            embed=discord.Embed(colour=embeds.BLUE).set_image(url="attachment://position.png"),
            file=discord.File(path, filename="position.png"), ephemeral=True)


def trade_buttons(run_id: str, position_id: int) -> discord.ui.View:
    """The buttons attached to an open-trade alert."""
    from bot.levels import BreakEvenButton

    view = discord.ui.View(timeout=None)
    view.add_item(CloseButton(run_id, position_id))
    view.add_item(BreakEvenButton(run_id, position_id))
    view.add_item(ChartButton(run_id, position_id))
    return view


def closed_buttons(run_id: str, trade: Trade) -> discord.ui.View:
    """What an opened alert shows once its position closed: greyed-out buttons saying how."""
    view = discord.ui.View(timeout=None)
    label = f"Closed · {fmt.reason_text(trade.exit_reason)}"[:80]
    view.add_item(discord.ui.Button(label=label, style=discord.ButtonStyle.secondary,
                                    disabled=True, custom_id=f"pb:closed:{run_id}:{trade.id}"))
    view.add_item(discord.ui.Button(label="Chart", style=discord.ButtonStyle.secondary,
                                    disabled=True, custom_id=f"pb:chart-off:{run_id}:{trade.id}"))
    return view
