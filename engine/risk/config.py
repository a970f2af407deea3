"""Protections: which guards a run has, parsed from ``name=value`` text, and where they come
from.

Three layers, later ones winning per name: the settings (``PAPERBOT_PROTECT_<NAME>``), the
strategy (its ``protections`` class attribute) and the run (CLI ``--protect name=value``,
Discord ``protect:"daily_loss_limit_pct=3 cooldown=5"``). ``off`` switches a guard off in a
later layer. Every bad value is one ``ProtectionError`` line naming the protection, the value
and what is valid.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from data.names import shown
from engine.errors import ServiceError

#: Every protection name, in the order guards are consulted for an entry.
NAMES = ("max_drawdown_pct", "max_drawdown_flatten", "daily_loss_limit_pct", "stoploss_guard",
         "cooldown", "max_open_positions")
#: Largest candle count or position limit accepted.
MAX_COUNT = 1_000_000
_OFF = ("off", "none")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ProtectionError(ServiceError, ValueError):
    """A protection that is unknown or has a bad value (one line for the user); a
    ``ServiceError``, so the CLI and the bot show it as it is."""


@dataclass(frozen=True, slots=True)
class Protections:
    """The guards of one run (None: off). Counts are base candles; percents of equity.

    Attributes:
        max_open_positions: no entry while this many positions are open.
        cooldown: base candles without entries after a stop-loss.
        stoploss_guard: ``(K, N, M)``: K stop-losses within N candles → M candles locked.
        daily_loss_limit_pct: loss since the UTC day's first close that stops entries for
            the day.
        max_drawdown_pct: drawdown from peak equity that stops entries.
        max_drawdown_flatten: also close every position when ``max_drawdown_pct`` trips.
    """

    max_open_positions: int | None = None
    cooldown: int | None = None
    stoploss_guard: tuple[int, int, int] | None = None
    daily_loss_limit_pct: float | None = None
    max_drawdown_pct: float | None = None
    max_drawdown_flatten: bool = False

    @property
    def any(self) -> bool:
        """True when at least one guard is on."""
        return any(v is not None for v in (self.max_open_positions, self.cooldown,
                                            self.stoploss_guard, self.daily_loss_limit_pct,
                                            self.max_drawdown_pct))

    def to_dict(self) -> dict[str, Any]:
        """The guards that are on, JSON-ready (``stoploss_guard`` as ``"K/N/M"``); what the
        run record stores and ``backtest --json`` prints."""
        out: dict[str, Any] = {}
        for name in NAMES:
            value = getattr(self, name)
            if name == "max_drawdown_flatten":
                if value and self.max_drawdown_pct is not None:
                    out[name] = True
            elif value is not None:
                out[name] = "/".join(map(str, value)) if name == "stoploss_guard" else value
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Protections:
        """Protections from ``to_dict``'s output (or any ``name: value`` mapping).

        Raises:
            ProtectionError: an unknown name or a bad value.
        """
        return cls(**parse_protections(values))

    def text(self) -> str:
        """``"cooldown=5 daily_loss_limit_pct=3"`` (``"none"`` when every guard is off)."""
        items = self.to_dict().items()
        return " ".join(f"{k}={'true' if v is True else f'{v:g}' if isinstance(v, float) else v}"
                        for k, v in items) or "none"


def parse_pairs(items: str | Iterable[str], where: str = "protection") -> dict[str, str]:
    """``"cooldown=5 daily_loss_limit_pct=3"`` or ``["cooldown=5", …]`` → ``{name: text}``
    (commas also separate pairs); ``where`` names the option in messages.

    Raises:
        ProtectionError: an item without ``=`` or without a name.
    """
    texts = [items] if isinstance(items, str) else list(items)
    out: dict[str, str] = {}
    for text in texts:
        for item in text.replace(",", " ").split():
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise ProtectionError(f"{where} {shown(item)} is not name=value, e.g. "
                                      f"cooldown=5 or daily_loss_limit_pct=3")
            out[name.strip().lower()] = value.strip()
    return out


def parse_protections(values: Mapping[str, Any], where: str = "protection") -> dict[str, Any]:
    """Check and convert ``{name: value}`` (text from the CLI, Discord or the environment;
    numbers, booleans or ``(K, N, M)`` from a strategy) into ``Protections`` field values
    (None for ``off``).

    Raises:
        ProtectionError: naming ``where``, the protection and what is valid; an unknown name
            gets the closest known names.
    """
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in NAMES:
            close = difflib.get_close_matches(str(name), NAMES, n=2, cutoff=0.5)
            hint = f"; did you mean {' or '.join(close)}?" if close else ";"
            raise ProtectionError(f"unknown {where} {shown(name)}{hint} protections are "
                                  f"{', '.join(NAMES)}")
        out[name] = parse_value(name, value, where)
    return out


def check_protect(items: str | Iterable[str], where: str) -> dict[str, str]:
    """``--protect`` / ``protect`` values → ``{name: text}``, each checked on its own (how they
    combine with the strategy's and the settings' protections is checked with the run).

    Raises:
        ProtectionError: (a ``ServiceError``) an item that is not ``name=value``, an unknown
            name or a bad value, naming ``where``.
    """
    pairs = parse_pairs(items, where)
    parse_protections(pairs, where)
    return pairs


def parse_value(name: str, value: Any, where: str = "protection") -> Any:
    """One protection's value: int candles/positions, float percent, ``(K, N, M)``, bool.
    ``where`` starts the message ("" for none: the settings name the variable themselves).

    Raises:
        ProtectionError: e.g. ``protection cooldown='-1': cooldown takes a whole number of
            candles from 0 to 1,000,000 (0 or off: no cooldown)``.
    """
    if isinstance(value, list | tuple):
        value = "/".join(str(v) for v in value)
    text = str(value).strip().lower()
    given = shown(value if isinstance(value, str) else text)
    prefix = f"{where} {name}={given}: {name}" if where else name
    if name == "max_drawdown_flatten":
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ProtectionError(f"{prefix} takes true or false")
    if text in _OFF:
        return None
    if name == "stoploss_guard":
        parts = text.split("/")
        counts = [_whole(p) for p in parts] if len(parts) == 3 else []
        if len(counts) != 3 or any(c is None or not 1 <= c <= MAX_COUNT for c in counts):
            raise ProtectionError(f"{prefix} takes K/N/M, three whole numbers from 1 to "
                                  f"{MAX_COUNT:,}: K stop-losses within N candles lock entries "
                                  f"for M candles, e.g. 3/24/12 (off: none)")
        return tuple(counts)
    if name in ("cooldown", "max_open_positions"):
        count = _whole(text)
        low = 0 if name == "cooldown" else 1
        if count is None or not low <= count <= MAX_COUNT:
            what = ("a whole number of candles from 0 to {:,} (0 or off: no cooldown)"
                    if name == "cooldown" else
                    "a whole number of positions from 1 to {:,} (off: no limit)")
            raise ProtectionError(f"{prefix} takes {what.format(MAX_COUNT)}")
        return None if count == 0 else count
    try:
        pct = float(text)
    except ValueError:
        pct = math.nan
    if not (math.isfinite(pct) and 0.0 < pct <= 100.0):
        raise ProtectionError(f"{prefix} takes a percent above 0 and at most 100, e.g. 3 "
                              f"(off: none)")
    return pct


def _whole(text: str) -> int | None:
    """``"5"`` → 5; anything that is not a whole number (``"2.5"``, ``"nan"``) → None."""
    try:
        return int(text.strip())
    except ValueError:
        return None


def resolve(run: Mapping[str, Any], strategy: Mapping[str, Any], defaults: Mapping[str, Any],
            strategy_name: str = "strategy", candle_ms: int | None = None) -> Protections:
    """The protections of a run: ``defaults`` (settings) < ``strategy`` < ``run``, per name.

    Args:
        run: what the trader typed for this run (``--protect``, ``protect:``).
        strategy: the strategy's ``protections`` class attribute.
        defaults: from the settings (``settings_defaults``).
        strategy_name: for messages about the strategy's own protections.
        candle_ms: the base candle length; ``daily_loss_limit_pct`` needs less than a day.

    Raises:
        ProtectionError: a bad name or value (saying which layer), ``max_drawdown_flatten``
            asked for a run without ``max_drawdown_pct``, or a daily limit on daily candles.
    """
    merged = parse_protections(defaults, "setting PAPERBOT_PROTECT_* protection")
    merged.update(parse_protections(strategy, f"strategy {strategy_name} protection"))
    asked = parse_protections(run)
    merged.update(asked)
    if asked.get("max_drawdown_flatten") and merged.get("max_drawdown_pct") is None:
        raise ProtectionError("protection max_drawdown_flatten=true needs max_drawdown_pct, "
                              "e.g. max_drawdown_pct=20 max_drawdown_flatten=true")
    if merged.get("max_drawdown_pct") is None:
        merged["max_drawdown_flatten"] = False
    if candle_ms is not None and candle_ms >= 86_400_000 \
            and merged.get("daily_loss_limit_pct") is not None:
        raise ProtectionError("protection daily_loss_limit_pct needs a base timeframe shorter "
                              "than 1d (each daily candle is its own day's first close); use "
                              "max_drawdown_pct instead")
    return Protections(**merged)


def for_run(protect: Mapping[str, Any], strategy: Any, settings: Any) -> Protections:
    """The protections of a run of ``strategy`` (an instance, its base timeframe first)
    asked with ``protect`` (``name: text``), over ``settings``' defaults (``resolve``).

    Raises:
        ProtectionError: see ``resolve``.
    """
    from data.timeframes import timeframe_ms

    return resolve(protect, getattr(strategy, "protections", None) or {},
                   settings_defaults(settings), strategy.name or type(strategy).__name__,
                   timeframe_ms(strategy.timeframes[0]))


def settings_defaults(settings: Any) -> dict[str, Any]:
    """The protections set in the settings (``PAPERBOT_PROTECT_<NAME>``), by name."""
    out: dict[str, Any] = {}
    for name in NAMES:
        value = getattr(settings, f"protect_{name}", None)
        if value is not None:
            out[name] = value
    return out
