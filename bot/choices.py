"""Autocomplete and choices for slash-command options.

Outside the configured guilds (and in DMs) every autocomplete offers nothing: the command tree
already answers there with no choices, and each function checks again (``_here``).
"""

from __future__ import annotations

import discord
from discord import app_commands

from bot.access import place_refusal, service_of
from data.timeframes import STANDARD_TIMEFRAMES
from engine import formatting as fmt
from engine.errors import ServiceError

TIMEFRAMES = [app_commands.Choice(name=tf, value=tf) for tf in STANDARD_TIMEFRAMES]
MAX_CHOICES = 25


def _here(interaction: discord.Interaction) -> bool:
    """True when the interaction comes from a configured guild (see ``bot.access``)."""
    return place_refusal(service_of(interaction).settings, interaction) is None


async def strategies(interaction: discord.Interaction,
                     current: str) -> list[app_commands.Choice[str]]:
    """Strategy names containing what was typed."""
    if not _here(interaction):
        return []
    wanted = current.lower()
    return [app_commands.Choice(name=f"{s.name} — {s.description}"[:100], value=s.name)
            for s in service_of(interaction).strategies() if wanted in s.name][:MAX_CHOICES]


async def symbols(interaction: discord.Interaction,
                  current: str) -> list[app_commands.Choice[str]]:
    """Cached symbols, then the live exchange's markets."""
    if not _here(interaction):
        return []
    names = await service_of(interaction).symbols(current)
    return [app_commands.Choice(name=n, value=n) for n in names[:MAX_CHOICES]]


async def runs(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """Run ids, running ones first, described by strategy, symbol and status."""
    if not _here(interaction):
        return []
    views = await service_of(interaction).runs()
    views.sort(key=lambda v: v.status != "running")
    wanted = current.lower()
    return [app_commands.Choice(
        name=f"{v.id} · {v.strategy} {v.symbol} {v.timeframe} · {v.status}"[:100], value=v.id)
        for v in views if wanted in v.id or wanted in v.strategy or wanted in v.symbol.lower()
    ][:MAX_CHOICES]


async def positions(interaction: discord.Interaction,
                    current: str) -> list[app_commands.Choice[int]]:
    """Open positions of the run chosen in the ``run`` option (or of every running run)."""
    if not _here(interaction):
        return []
    run = getattr(interaction.namespace, "run", None)
    try:
        views = await service_of(interaction).positions(run or None)
    except ServiceError:
        return []
    return [app_commands.Choice(
        name=f"#{v.id} {v.side} {v.size:.6g} {v.symbol} @ {fmt.number(v.entry_price)} "
             f"({v.run_id})"[:100], value=v.id)
        for v in views if current.strip() in str(v.id)][:MAX_CHOICES]


async def positions_or_all(interaction: discord.Interaction,
                           current: str) -> list[app_commands.Choice[str]]:
    """``all`` and the open positions of the run chosen in the ``run`` option."""
    found = await positions(interaction, current if current.strip().isdigit() else "")
    out = [app_commands.Choice(name="all — every position of the run", value="all")] \
        if "all".startswith(current.strip().lower()) else []
    out += [app_commands.Choice(name=c.name, value=str(c.value)) for c in found]
    return out[:MAX_CHOICES]
