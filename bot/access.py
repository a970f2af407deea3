"""Who may change things: mutating commands and buttons need an allowed user or role.

Read commands (``/positions``, ``/trades``, ``/pnl``, ``/strategies``, ``/forward list``) are open
to everyone in the guild. ``/backtest``, ``/forward start|stop``, ``/close`` and the alert
buttons need the user's id in ``PAPERBOT_ALLOWED_USER_IDS`` or one of their roles in
``PAPERBOT_ALLOWED_ROLE_IDS``; a refusal is answered ephemerally and written to the audit log.
"""

from __future__ import annotations

import discord
from discord import app_commands

from engine.service import PaperService
from engine.settings import Settings


class NotAllowed(app_commands.CheckFailure):
    """The user may not run this command; the message says how to get access."""


def actor(user: discord.abc.User) -> str:
    """Audit-log name of a Discord user: ``discord:<id>``."""
    return f"discord:{user.id}"


def is_allowed(settings: Settings, user: discord.abc.User) -> bool:
    """True when the user's id or one of their roles is on the allow lists."""
    if user.id in settings.allowed_user_ids:
        return True
    roles = getattr(user, "roles", [])
    return any(role.id in settings.allowed_role_ids for role in roles)


async def require_allowed(interaction: discord.Interaction, service: PaperService,
                          action: str) -> None:
    """Raise ``NotAllowed`` (after auditing the attempt) unless the user may ``action``."""
    if is_allowed(service.settings, interaction.user):
        return
    await service.audit(actor(interaction.user), "refused", None,
                        {"action": action, "user": str(interaction.user)})
    if not (service.settings.allowed_user_ids or service.settings.allowed_role_ids):
        hint = ("nobody is allowed yet: the bot's owner sets PAPERBOT_ALLOWED_USER_IDS or "
                "PAPERBOT_ALLOWED_ROLE_IDS")
    else:
        hint = "ask the bot's owner to add your user id or one of your roles to the allow list"
    raise NotAllowed(f"You may not use {action}: {hint}.")


def trader_only(action: str):
    """``app_commands.check`` for a mutating command (the cog must have ``service``)."""

    async def predicate(interaction: discord.Interaction) -> bool:
        cog = interaction.command.binding if interaction.command else None  # type: ignore[union-attr]
        await require_allowed(interaction, cog.service, action)
        return True

    return app_commands.check(predicate)
