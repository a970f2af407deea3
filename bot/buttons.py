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

from bot import embeds
from bot.access import NotAllowed, check_place, require_allowed, require_owner, service_of
from bot.confirm import close_choices, close_embed
from bot.errors import reply_error
from engine import formatting as fmt
from engine.errors import ServiceError
from engine.service import PaperService
from engine.types import Trade


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
        return await check_place(interaction, service_of(interaction))

    async def checked_service(self, interaction: discord.Interaction) -> PaperService | None:
        """The service when the clicker is allowed and owns the run (or manages); else the
        refusal is answered (ephemeral, audited) and None returned."""
        service = service_of(interaction)
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
        await interaction.response.send_message(
            embed=close_embed(self.run_id, self.position_id),
            view=close_choices(service, self.run_id, self.position_id), ephemeral=True)


class ChartButton(PositionButton, template=r"pb:chart:(?P<run>[0-9a-f]+):(?P<position>[0-9]+)"):
    """Chart button on an open-trade alert: recent candles with the position's levels.

    Reading is open: any member of a configured guild may press it.
    """

    prefix, label = "pb:chart", "Chart"

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            path = await service_of(interaction).position_chart(self.run_id, self.position_id)
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
