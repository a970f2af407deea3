"""Confirmation prompts for actions that change runs: closing one position (``/close``, the
alert's Close button), moving its stop to break-even, stopping a run that holds positions,
closing every position of a run, the kill switch.

Each is an ephemeral view with explicit buttons; the person who pressed must still be allowed
(checked again on the click, since the prompt may be forwarded or old). Nothing happens until a
button says so; "Cancel" changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

from bot import embeds, embeds_views
from bot.access import NotAllowed, actor, check_place, require_allowed, require_owner
from bot.errors import fit_text
from engine.errors import ServiceError
from engine.service import PaperService

Action = Callable[[discord.Interaction], Awaitable[discord.Embed]]


def warning(exc: Exception) -> discord.Embed:
    """The answer that replaces a prompt when its action was refused or failed."""
    return discord.Embed(description=fit_text(f"⚠️ {exc}"), colour=embeds.ORANGE)


async def cancelled(view: discord.ui.View, interaction: discord.Interaction,
                    text: str = "Nothing was changed.") -> None:
    """Answer a prompt's Cancel click: the prompt becomes ``text``, its buttons go."""
    await interaction.response.edit_message(
        embed=discord.Embed(description=text, colour=embeds.GREY), view=None)
    view.stop()


class Choices(discord.ui.View):
    """Buttons, each running one action that returns the reply embed; plus Cancel.

    Args:
        what: the action named in a refusal (``/close``).
        run_id: the run the actions change (its owner or a manager may); None: no run.
        verb: the verb of an ownership refusal (``close``).
        cancel_text: what the prompt says after Cancel.
    """

    def __init__(self, service: PaperService, what: str, run_id: str | None,
                 options: list[tuple[str, discord.ButtonStyle, Action]], *,
                 verb: str = "change", cancel_text: str = "Nothing was changed.") -> None:
        super().__init__(timeout=120)
        self.service = service
        self.what = what
        self.run_id = run_id
        self.verb = verb
        self.cancel_text = cancel_text
        for label, style, action in options:
            button = discord.ui.Button(label=label, style=style)
            button.callback = self._wrap(action)
            self.add_item(button)
        cancel = discord.ui.Button(label="Cancel", style=discord.ButtonStyle.secondary)
        cancel.callback = self._cancel
        self.add_item(cancel)

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Clicks only from a configured guild (answered and audited otherwise)."""
        return await check_place(interaction, self.service)

    def _wrap(self, action: Action) -> Callable[[discord.Interaction], Awaitable[None]]:
        async def run(interaction: discord.Interaction) -> None:
            await interaction.response.defer()  # actions wait for the engine: ack within 3 s
            try:
                await require_allowed(interaction, self.service, self.what)
                if self.run_id is not None:
                    await require_owner(interaction, self.service, self.run_id, self.verb)
                embed = await action(interaction)
            except (ServiceError, NotAllowed) as exc:
                embed = warning(exc)
            await interaction.edit_original_response(embed=embed, view=None)
            self.stop()

        return run

    async def _cancel(self, interaction: discord.Interaction) -> None:
        await cancelled(self, interaction, self.cancel_text)


def close_embed(run_id: str, position_id: int) -> discord.Embed:
    """The question asked before a manual close."""
    return discord.Embed(title=f"Close position #{position_id} of run {run_id}?",
                         description="A paper market exit at the last price (slippage and "
                                     "taker fee applied).", colour=embeds.ORANGE)


def close_choices(service: PaperService, run_id: str, position_id: int) -> Choices:
    """``/close run position`` and the alert's Close button: a paper market exit."""

    async def close(interaction: discord.Interaction) -> discord.Embed:
        trade = await service.close_position(run_id, position_id, actor(interaction.user))
        return embeds_views.closed_reply(trade)

    return Choices(service, "/close", run_id,
                   [("Close at market", discord.ButtonStyle.danger, close)],
                   verb="close", cancel_text="Nothing was closed.")


def break_even_choices(service: PaperService, run_id: str, position_id: int) -> Choices:
    """The alert's **Stop → break-even** button: move the stop-loss to the entry."""

    async def move(interaction: discord.Interaction) -> discord.Embed:
        view = await service.break_even(run_id, position_id, actor(interaction.user))
        return embeds_views.level_reply(view, "Stop moved to break-even")

    return Choices(service, "the break-even button", run_id,
                   [("Move stop to entry", discord.ButtonStyle.primary, move)])


def stop_choices(service: PaperService, run_id: str, count: int) -> Choices:
    """``/forward stop`` on a run holding ``count`` positions."""

    async def close(interaction: discord.Interaction) -> discord.Embed:
        view = await service.stop_run(run_id, actor(interaction.user), close_positions=True)
        return embeds_views.runs([view], f"Run stopped · {count} position{'s' * (count != 1)} "
                                   "closed at market")

    async def keep(interaction: discord.Interaction) -> discord.Embed:
        view = await service.stop_run(run_id, actor(interaction.user), close_positions=False)
        return embeds_views.runs([view], "Entries stopped · exits still managed (paused)")

    plural = "s" * (count != 1)
    return Choices(service, "/forward stop", run_id, [
        (f"Stop and close {count} position{plural}", discord.ButtonStyle.danger, close),
        ("Stop entries, keep managing exits", discord.ButtonStyle.primary, keep)])


def close_all_choices(service: PaperService, run_id: str, count: int) -> Choices:
    """``/close run all``."""

    async def close(interaction: discord.Interaction) -> discord.Embed:
        trades = await service.close_all(run_id, actor(interaction.user))
        return embeds_views.closed_list(trades, f"Closed {len(trades)} position"
                                          f"{'s' * (len(trades) != 1)} of run {run_id}")

    return Choices(service, "/close", run_id, [
        (f"Close all {count} at market", discord.ButtonStyle.danger, close)])


def panic_choices(service: PaperService, positions: int, runs: int) -> Choices:
    """``/panic``: the kill switch."""

    async def panic(interaction: discord.Interaction) -> discord.Embed:
        return embeds_views.panic_report(await service.panic(actor(interaction.user)))

    return Choices(service, "/panic", None, [
        (f"Pause {runs} run{'s' * (runs != 1)} and close {positions} position"
         f"{'s' * (positions != 1)}", discord.ButtonStyle.danger, panic)])
