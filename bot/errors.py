"""One place that turns every command error into an ephemeral reply (never a silent failure)."""

from __future__ import annotations

import logging
import re

import discord
from discord import app_commands

from data.names import shown
from engine.errors import ServiceError, scrub_secrets

log = logging.getLogger(__name__)

#: Discord refuses an embed description over 4,096 characters; errors are cut below that.
ERROR_TEXT_LIMIT = 4000


def fit_text(text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
    """``text`` when it has at most ``limit`` characters, else its start cut with "…".

    ``fit_text("x" * 5000)`` has exactly 4,000 characters, the last one "…".
    """
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"


_CLI_OR = re.compile(r"\s+or paperbot [a-z]+")
_CLI_HINT = re.compile(r"\s*\((?:or |see )?paperbot [^()]*\)")
_OUT_FOLDER = re.compile(r"cannot write (?:the charts and files )?to (?:the output folder )?.*")


def phone_text(text: str) -> str:
    """A service error as a phone user should read it: without the command-line hints
    (``(or paperbot runs)``) and without server paths.

    ``phone_text("unknown run 'x'; list them with /forward list (or paperbot runs)")`` →
    ``"unknown run 'x'; list them with /forward list"``.
    """
    if "--out" in text and _OUT_FOLDER.search(text):
        return ("the server cannot write the backtest's charts and files (its output folder "
                "is not writable); ask whoever runs paperbot to fix PAPERBOT_OUT_DIR")
    return _CLI_HINT.sub("", _CLI_OR.sub("", text))


def user_message(error: BaseException) -> str:
    """The text to show for ``error``: user errors verbatim, bugs as a short notice.

    The text is scrubbed of credentials (``engine.errors.scrub_secrets``); it is not cut.
    """
    original = getattr(error, "original", None) or getattr(error, "__cause__", None)
    if isinstance(error, app_commands.CommandInvokeError) and original is not None:
        error = original
    if isinstance(error, ServiceError):
        return phone_text(scrub_secrets(str(error)))
    if isinstance(error, app_commands.CheckFailure):
        return scrub_secrets(str(error))
    if isinstance(error, app_commands.TransformerError):
        return scrub_secrets(f"{shown(error.value, 100)} is not a valid "
                             f"{error.type.name.lower()}")
    if isinstance(error, app_commands.AppCommandError):
        return scrub_secrets(str(error)) or type(error).__name__
    return f"Something went wrong ({type(error).__name__}); it was logged."


async def reply_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Answer ``interaction`` ephemerally with the error, whatever state the reply is in."""
    text = user_message(error)
    if not isinstance(getattr(error, "original", error), ServiceError | app_commands.CheckFailure):
        log.error("command %s failed", getattr(interaction.command, "qualified_name", "?"),
                  exc_info=error)
    embed = discord.Embed(description=fit_text(f"⚠️ {text}"), colour=discord.Colour.orange())
    try:
        if interaction.response.is_done():
            if interaction.type == discord.InteractionType.application_command:
                # slow commands defer ephemerally: the error replaces the "thinking…" reply
                original = await interaction.original_response()
                if original.flags.ephemeral:
                    await interaction.edit_original_response(content=None, embed=embed,
                                                             attachments=[], view=None)
                    return
            await interaction.followup.send(embed=embed, ephemeral=True)
        else:
            await interaction.response.send_message(embed=embed, ephemeral=True)
    except discord.HTTPException:
        log.exception("could not tell the user about an error")
