"""Search spaces: ``fast=5:50 slow=20:200:10 stop_loss_pct=0.5:3:0.5 allow_short=true,false``.

A range is ``low:high`` or ``low:high:step`` (both ends included); a list ``a,b,c`` gives the
choices; one value fixes the parameter. The type is the type of the strategy's declared
default: an int parameter takes whole numbers, a float parameter any numbers (without a step:
a continuous range), a bool parameter ``true,false``. Strategies may declare default ranges
in ``param_space`` (same strings), used when none are given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from data.names import shown
from engine.errors import ServiceError
from engine.strategy import ParamError, parse_param_pairs, resolve_params

#: Grid searches larger than this are refused (ask for a step).
MAX_GRID = 100_000


@dataclass(frozen=True, slots=True)
class ParamRange:
    """One searched parameter.

    Attributes:
        name: the strategy parameter.
        kind: ``"int" | "float" | "choice"``.
        low, high: bounds (inclusive) of a numeric range.
        step: grid step of a numeric range (None: continuous float).
        choices: the values of a ``choice`` parameter, typed like the default.
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def grid(self) -> list[Any]:
        """Every value of the range (a continuous float range is refused).

        Raises:
            ServiceError: for a float range without a step.
        """
        if self.kind == "choice":
            return list(self.choices)
        if self.step is None:
            raise ServiceError(f"the grid sampler needs a step for {self.name} "
                               f"(e.g. {self.name}={self.low:g}:{self.high:g}:0.5)")
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        values = [self.low + k * self.step for k in range(count)]
        return [round(v) for v in values] if self.kind == "int" else \
            [round(v, 12) for v in values]

    def spec(self) -> str:
        """The range written back as text (``5:50``, ``0.5:3:0.5``, ``true,false``)."""
        if self.kind == "choice":
            return ",".join(str(c).lower() if isinstance(c, bool) else str(c)
                            for c in self.choices)
        text = f"{self.low:g}:{self.high:g}"
        return text + (f":{self.step:g}" if self.step not in (None, 1) or
                       (self.kind == "float" and self.step is not None) else "")


def _number(name: str, text: str, kind: type) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ServiceError(f"bad range for {name}: {shown(text)} is not a number") from None
    if not math.isfinite(value):
        raise ServiceError(f"bad range for {name}: {shown(text)} is not a finite number")
    if kind is int and value != int(value):
        raise ServiceError(f"{name} takes whole numbers, got {shown(text)}")
    return value


def parse_range(name: str, text: str, default: Any) -> ParamRange:
    """One ``name=text`` entry, typed by the declared ``default``.

    Raises:
        ServiceError: a malformed range, low above high, a step ≤ 0, or a value that does not
            fit the parameter's type.
    """
    text = text.strip()
    kind = type(default)
    if "," in text or kind in (bool, str) or ":" not in text:
        items = [t for t in (p.strip() for p in text.split(",")) if t]
        if not items:
            raise ServiceError(f"empty range for {name}")
        try:
            values = tuple(dict.fromkeys(resolve_params({name: default}, {name: t})[name]
                                         for t in items))
        except ParamError as exc:
            raise ServiceError(str(exc)) from None
        return ParamRange(name, "choice", choices=values)
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ServiceError(f"bad range for {name}: {shown(text)}; write low:high or "
                           "low:high:step, e.g. fast=5:50 or slow=20:200:10")
    low, high = (_number(name, p, kind) for p in parts[:2])
    step = _number(name, parts[2], kind) if len(parts) == 3 else (1.0 if kind is int else None)
    if low > high:
        raise ServiceError(f"bad range for {name}: low {low:g} is above high {high:g}")
    if step is not None and step <= 0:
        raise ServiceError(f"bad range for {name}: the step must be above 0, got {step:g}")
    return ParamRange(name, "int" if kind is int else "float", low, high, step)


def parse_space(specs: list[str] | str | Mapping[str, str] | None,
                declared: Mapping[str, Any], defaults: Mapping[str, str] | None = None,
                strategy: str = "strategy") -> dict[str, ParamRange]:
    """The search space from ``specs`` (``["fast=5:50", …]``, one string, or a mapping).

    Without specs, the strategy's ``param_space`` (``defaults``) is used.

    Raises:
        ServiceError: unknown parameter names (with the declared ones), a bad range, or no
            space at all.
    """
    if isinstance(specs, Mapping):
        pairs = dict(specs)
    else:
        try:
            pairs = parse_param_pairs(specs or [])
        except ParamError as exc:
            raise ServiceError(str(exc).replace("parameter", "range", 1)) from None
    if not pairs:
        pairs = dict(defaults or {})
    if not pairs:
        raise ServiceError(f"{strategy} declares no param_space: give ranges, e.g. "
                           "--space fast=5:50 slow=20:200:10")
    space = {}
    for name, text in pairs.items():
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise ServiceError(f"{strategy} has no parameter {name!r} to search; "
                               f"parameters: {known}")
        space[name] = parse_range(name, text, declared[name])
    return space


def grid_size(space: Mapping[str, ParamRange]) -> int:
    """Points of the full grid (refusing continuous ranges, see ``ParamRange.grid``)."""
    total = 1
    for r in space.values():
        total *= len(r.grid())
    return total


def distributions(space: Mapping[str, ParamRange]) -> dict[str, Any]:
    """Optuna distributions of ``space`` (imports optuna)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, r in space.items():
        if r.kind == "choice":
            out[name] = CategoricalDistribution(list(r.choices))
        elif r.kind == "int":
            high = r.low + math.floor((r.high - r.low) / r.step) * r.step
            out[name] = IntDistribution(int(r.low), int(high), step=int(r.step))
        else:
            high = r.high if r.step is None else \
                r.low + math.floor((r.high - r.low) / r.step + 1e-9) * r.step
            out[name] = FloatDistribution(r.low, high, step=r.step)
    return out


def space_text(space: Mapping[str, ParamRange]) -> str:
    """``fast=5:50 slow=20:200:10`` (for listings and study metadata)."""
    return " ".join(f"{name}={r.spec()}" for name, r in space.items())
