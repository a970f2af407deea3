"""Previous/Next buttons of ``/trades``.

They are ``DynamicItem``s: the scope (a run id, or ``all``) and the page they lead to live in
the ``custom_id`` (``pb:trades:<scope>:<page>:<prev|next>``), so pages keep turning after a
redeploy. Reading is open: any member of a configured guild may turn them; the message is
edited in place.
"""

from __future__ import annotations

import re

import discord

from bot import embeds_stats
from bot.access import check_place, service_of
from bot.errors import reply_error
from engine.errors import ServiceError
from engine.service_stats import TradesPage


class PageButton(discord.ui.DynamicItem[discord.ui.Button],
                 template=r"pb:trades:(?P<scope>all|[0-9a-f]+):(?P<page>[0-9]+):"
                          r"(?P<way>prev|next)"):
    """One of the two page buttons under a ``/trades`` reply."""

    def __init__(self, scope: str, page: int, way: str, disabled: bool = False) -> None:
        label = "◀ Previous" if way == "prev" else "Next ▶"
        super().__init__(discord.ui.Button(label=label, style=discord.ButtonStyle.secondary,
                                           disabled=disabled,
                                           custom_id=f"pb:trades:{scope}:{page}:{way}"))
        self.scope = scope
        self.page = page

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> PageButton:
        return cls(match["scope"], int(match["page"]), match["way"])

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Clicks only from a configured guild (answered and audited otherwise)."""
        return await check_place(interaction, service_of(interaction))

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            page = await service_of(interaction).trades_page(
                None if self.scope == "all" else self.scope, self.page)
        except ServiceError as exc:
            await reply_error(interaction, exc)
            return
        await interaction.response.edit_message(embed=embeds_stats.trades_page(page),
                                                view=page_buttons(page))


def page_buttons(page: TradesPage) -> discord.ui.View | None:
    """Previous/Next under a page of trades (None when everything fits on one page)."""
    if page.pages <= 1:
        return None
    scope = "all" if page.scope.all_runs else page.scope.runs[0]
    view = discord.ui.View(timeout=None)
    view.add_item(PageButton(scope, max(1, page.page - 1), "prev", disabled=page.page <= 1))
    view.add_item(PageButton(scope, min(page.pages, page.page + 1), "next",
                             disabled=page.page >= page.pages))
    return view
