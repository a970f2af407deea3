"""Human formatting of numbers shared by the CLI and the Discord embeds."""

from __future__ import annotations

import math

from engine.reporting import iso

__all__ = ["duration", "iso", "money", "number", "pct", "ratio"]


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
