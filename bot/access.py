"""Who may do what from Discord, and where.

Where: commands, buttons and autocomplete answer only inside the configured guild(s)
(``PAPERBOT_GUILD_ID``, one or more comma-separated ids; when none is configured, any guild the
bot was added to), never in DMs or group DMs. Anything else gets an ephemeral one-line refusal
that is written to the audit log; autocomplete there offers no choices (not audited: it fires
on every keystroke, and the command that follows is refused and audited).

Reading is open to every member there: ``/positions``, ``/trades``, ``/pnl``, ``/forward list``,
``/strategies`` and the Chart button of alerts.

Changing needs the allow lists: ``/backtest``, ``/forward start|stop``, ``/close`` and the
Close button need the user's id in ``PAPERBOT_ALLOWED_USER_IDS`` or one of their roles in
``PAPERBOT_ALLOWED_ROLE_IDS`` or ``PAPERBOT_MANAGER_ROLE_IDS``.

Runs belong to the member who started them (``RunRecord.started_by`` is
``discord:<user id>``; ``cli`` for runs started from the terminal): ``/forward stop``,
``/close`` and the Close button (and its confirmation) on someone else's run also need a role in
``PAPERBOT_MANAGER_ROLE_IDS``. Every refusal is answered ephemerally in one line, audited, and
changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import discord
from discord import app_commands

from bot.errors import reply_error
from engine.service import PaperService
from engine.settings import Settings


class NotAllowed(app_commands.CheckFailure):
    """The user may not do this here; the message says why and what would be allowed."""


def service_of(interaction: discord.Interaction) -> PaperService:
    """The bot's ``PaperService`` (``interaction.client.service``)."""
    return interaction.client.service  # type: ignore[attr-defined]


def actor(user: discord.abc.User) -> str:
    """Audit-log name of a Discord user: ``discord:<id>`` (also ``RunRecord.started_by``)."""
    return f"discord:{user.id}"


def mention(who: str) -> str | None:
    """The Discord mention ``<@id>`` of the actor ``who`` when it is ``discord:<id>``; None for
    any other actor (``cli``, ``engine``…)."""
    return f"<@{who.removeprefix('discord:')}>" if who.startswith("discord:") else None


def _has_role(user: discord.abc.User, role_ids: Iterable[int]) -> bool:
    wanted = set(role_ids)
    return any(role.id in wanted for role in getattr(user, "roles", []))


def is_manager(settings: Settings, user: discord.abc.User) -> bool:
    """True when one of the user's roles is in ``PAPERBOT_MANAGER_ROLE_IDS``."""
    return _has_role(user, settings.manager_role_ids)


def is_allowed(settings: Settings, user: discord.abc.User) -> bool:
    """True when the user may change things: allowed user id, allowed role or manager role."""
    if user.id in settings.allowed_user_ids:
        return True
    return _has_role(user, settings.allowed_role_ids) or is_manager(settings, user)


def place_refusal(settings: Settings, interaction: discord.Interaction) -> str | None:
    """Why the bot does not answer where ``interaction`` comes from (None: it does)."""
    if interaction.guild_id is None:
        return ("paperbot does not answer in direct messages; use its commands in the server "
                "it was set up for")
    if settings.guild_ids and interaction.guild_id not in settings.guild_ids:
        return ("paperbot is not set up for this server; it answers only in the server(s) "
                "listed in PAPERBOT_GUILD_ID")
    return None


def action_name(interaction: discord.Interaction) -> str:
    """What was attempted, for the audit log: ``/forward stop`` or ``button pb:close:…``."""
    data: dict = interaction.data or {}  # type: ignore[assignment]
    if "custom_id" in data:
        return f"button {data['custom_id']}"
    parts = [str(data.get("name", "?"))]
    options = data.get("options") or []
    while options and options[0].get("type") in (1, 2):  # subcommand (group)
        parts.append(options[0]["name"])
        options = options[0].get("options") or []
    return "/" + " ".join(parts)


async def check_place(interaction: discord.Interaction, service: PaperService) -> bool:
    """Runtime guard of every interaction: True when it comes from a configured guild.

    Otherwise it answers (ephemeral refusal, or no choices for autocomplete), audits the
    attempt (not for autocomplete) and returns False, so nothing runs.
    """
    problem = place_refusal(service.settings, interaction)
    if problem is None:
        return True
    if interaction.type is discord.InteractionType.autocomplete:
        if not interaction.response.is_done():
            await interaction.response.autocomplete([])
        return False
    await service.audit(actor(interaction.user), "refused", None, {
        "action": action_name(interaction), "user": str(interaction.user),
        "guild": interaction.guild_id, "reason": "outside the configured guilds"})
    await reply_error(interaction, NotAllowed(problem))
    return False


async def require_allowed(interaction: discord.Interaction, service: PaperService,
                          action: str) -> None:
    """Return when the user may ``action`` (allow lists or manager role).

    Raises:
        NotAllowed: after auditing the attempt, saying how to get access.
    """
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


def ownership_refusal(run_id: str, started_by: str | None, verb: str) -> str:
    """One line saying whose run it is and who may ``verb`` it (``stop``, ``close``)."""
    owner = mention(started_by) if started_by else None
    if owner:
        return f"run {run_id} belongs to {owner}; only they or a manager can {verb} it"
    origin = "was started from the command line" if started_by == "cli" else "has no owner"
    return (f"run {run_id} {origin}; only a manager (a role in PAPERBOT_MANAGER_ROLE_IDS) "
            f"can {verb} it")


async def require_owner(interaction: discord.Interaction, service: PaperService, run_id: str,
                        verb: str) -> None:
    """Return when the user started run ``run_id`` or has a manager role.

    Raises:
        ServiceError: unknown run.
        NotAllowed: someone else's run (audited; nothing changes).
    """
    record = await service.run_record(run_id)
    who = actor(interaction.user)
    if record.started_by == who or is_manager(service.settings, interaction.user):
        return
    await service.audit(who, "refused", record.id, {
        "action": verb, "user": str(interaction.user), "owner": record.started_by,
        "reason": "not the run's owner"})
    raise NotAllowed(ownership_refusal(record.id, record.started_by, verb))


def trader_only(action: str):
    """``app_commands.check`` for a mutating command (the cog must have ``service``)."""

    async def predicate(interaction: discord.Interaction) -> bool:
        cog = interaction.command.binding if interaction.command else None  # type: ignore[union-attr]
        await require_allowed(interaction, cog.service, action)
        return True

    return app_commands.check(predicate)
