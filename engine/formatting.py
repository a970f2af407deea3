"""Human formatting of numbers shared by the CLI and the Discord embeds."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from engine.reporting import iso

__all__ = ["day", "duration", "iso", "leverage", "money", "number", "pct", "ratio",
           "reason_text", "signed_money", "when"]


def pct(value: float | None, signed: bool = True, digits: int = 2) -> str:
    """``12.345`` → ``"+12.35 %"``; None → ``"—"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+,.{digits}f} %" if signed else f"{value:,.{digits}f} %"


def money(value: float | None, currency: str = "", digits: int = 2) -> str:
    """``12345.678`` → ``"12,345.68 USDT"``; None → ``"—"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}" + (f" {currency}" if currency else "")


def number(value: float | None, digits: int = 2) -> str:
    """Plain number with thousands separators; ∞ for infinity; ``"—"`` for None/nan."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:,.{digits}f}"


def leverage(value: float) -> str:
    """Notional / margin for people: ``5.0`` → ``"5x"``, ``2.5`` → ``"2.5x"``."""
    return f"{value:g}x"


def ratio(value: float | str | None, digits: int = 2) -> str:
    """Like ``number`` but accepts the JSON ``"inf"`` string."""
    if value == "inf":
        return "∞"
    return number(value if not isinstance(value, str) else float(value), digits)


def duration(ms: float | None) -> str:
    """``5_400_000`` → ``"1h 30m"``; ``90_000_000`` → ``"1d 1h"``; None → ``"—"``."""
    if ms is None or (isinstance(ms, float) and math.isnan(ms)):
        return "—"
    minutes = round(ms / 60_000)
    days, rem = divmod(minutes, 1440)
    hours, mins = divmod(rem, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m"


def signed_money(value: float | None, currency: str = "", digits: int = 2) -> str:
    """``46.471`` → ``"+46.47 USDT"``, ``-3`` → ``"-3.00 USDT"``; None → ``"—"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+,.{digits}f}" + (f" {currency}" if currency else "")


def when(ms: int | None, now: int | None = None, *, utc: bool = True) -> str:
    """A time for people: ``"Jun 02 14:30 UTC"``, with the year when it is not this year's
    (``"Jun 02 2024 14:30 UTC"``); ``now`` (ms UTC) defaults to the clock; None → ``"—"``."""
    if ms is None:
        return "—"
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    this_year = datetime.fromtimestamp((now if now is not None else time.time() * 1000) / 1000,
                                       tz=UTC).year
    text = moment.strftime("%b %d %H:%M" if moment.year == this_year else "%b %d %Y %H:%M")
    return text + (" UTC" if utc else "")


def day(ms: int, now: int | None = None) -> str:
    """A UTC day: ``"Jun 02"``, or ``"Jun 02 2024"`` when not this year."""
    return when(ms, now, utc=False)[:-6]


def reason_text(reason: str) -> str:
    """An exit reason for people: ``"take_profit"`` → ``"take-profit"``, ``"end_of_data"`` →
    ``"end of data"``, ``"manual"`` → ``"manual close"``; any other reason keeps its words
    (``"trailing_stop"`` → ``"trailing-stop"``)."""
    return {"end_of_data": "end of data", "manual": "manual close"}.get(
        reason, reason.replace("_", "-"))
