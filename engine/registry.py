"""Strategy discovery by name.

Every module in the ``strategies`` package, and every ``*.py`` file in the extra strategy folder
(``PAPERBOT_STRATEGY_DIR``), is scanned for ``Strategy`` subclasses. A strategy's name is its
``name`` attribute, else its module's file name (``strategies/sma_cross.py`` → ``sma_cross``).
User files may override bundled strategies of the same name.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import logging
import pkgutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import strategies as bundled
from data.names import shown
from data.timeframes import TimeframeError, timeframe_ms
from engine.errors import ServiceError
from engine.strategy import MAX_WARMUP_CANDLES, ParamError, Strategy

log = logging.getLogger(__name__)


class UnknownStrategyError(LookupError):
    """No strategy of that name; the message lists the available names."""


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    """A discovered strategy: its name, class, one-line description and declared params."""

    name: str
    cls: type[Strategy]
    description: str
    params: dict[str, Any]
    timeframes: list[str]
    source: str
    param_space: dict[str, str] = field(default_factory=dict)


def _strategies_in(module: ModuleType) -> list[type[Strategy]]:
    return [
        obj for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Strategy) and obj is not Strategy and obj.__module__ == module.__name__
    ]


def _load_file(path: Path) -> ModuleType:
    module_name = f"paperbot_user_strategies.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def discover(extra_dir: Path | None = None) -> dict[str, StrategyInfo]:
    """All strategies by name: the bundled ones, then those in ``extra_dir``.

    A user file that fails to import is logged and skipped, so one broken file does not hide
    the others.
    """
    modules: list[tuple[ModuleType, str]] = []
    for info in pkgutil.iter_modules(bundled.__path__):
        if not info.name.startswith("_"):
            modules.append((importlib.import_module(f"strategies.{info.name}"), "bundled"))
    if extra_dir is not None and Path(extra_dir).is_dir():
        for path in sorted(Path(extra_dir).glob("*.py")):
            if path.name.startswith("_"):
                continue
            try:
                modules.append((_load_file(path), str(path)))
            except Exception as exc:  # a user's broken file must not hide the others
                log.error("skipping strategy file %s: %s", path, exc)
    found: dict[str, StrategyInfo] = {}
    for module, source in modules:
        classes = _strategies_in(module)
        for cls in classes:
            stem = module.__name__.rsplit(".", 1)[-1]
            name = cls.name or (stem if len(classes) == 1 else cls.__name__)
            doc = (inspect.getdoc(cls) or "").splitlines()
            found[name] = StrategyInfo(
                name=name,
                cls=cls,
                description=cls.description or (doc[0] if doc else ""),
                params=dict(cls.params),
                timeframes=list(cls.timeframes),
                source=source,
                param_space=dict(getattr(cls, "param_space", {}) or {}),
            )
    return dict(sorted(found.items()))


def get_strategy(name: str, extra_dir: Path | None = None) -> StrategyInfo:
    """The strategy called ``name``.

    Raises:
        UnknownStrategyError: naming the closest matches and every available strategy.
    """
    found = discover(extra_dir)
    if name in found:
        return found[name]
    close = difflib.get_close_matches(name, list(found), n=2)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise UnknownStrategyError(
        f"unknown strategy {shown(name)}.{hint} Available: {', '.join(found) or 'none'}"
    )


def build_strategy(name: str, params: Mapping[str, Any] | None, timeframe: str | None,
                   extra_dir: Path | None = None) -> Strategy:
    """A strategy instance by name, with ``params`` and a base ``timeframe`` (None: its own).

    Raises:
        ServiceError: unknown strategy (listing the available ones), bad timeframe or params,
            or params whose warm-up exceeds the history limit (``MAX_WARMUP_CANDLES``).
    """
    try:
        info = get_strategy(name, extra_dir)
        base = timeframe or info.timeframes[0]
        timeframe_ms(base)
        strategy = info.cls(params, timeframe=base)
    except (UnknownStrategyError, ParamError, TimeframeError) as exc:
        raise ServiceError(str(exc)) from None
    check_warmup(strategy, info.name, params)
    return strategy


def check_warmup(strategy: Strategy, name: str, params: Mapping[str, Any] | None) -> int:
    """``strategy.warmup_candles()`` when it is within the history limit.

    Raises:
        ServiceError: naming the parameter values (those given in ``params``, else all of
            them) and the limit ``MAX_WARMUP_CANDLES``.
    """
    warmup = strategy.warmup_candles()
    if warmup > MAX_WARMUP_CANDLES:
        named = [k for k in strategy.params if k in (params or {})] or list(strategy.params)
        values = " ".join(f"{k}={strategy.params[k]}" for k in named) or "its defaults"
        raise ServiceError(
            f"{name} with {values} needs {warmup:,} candles of warm-up, more than the history "
            f"limit of {MAX_WARMUP_CANDLES:,} candles; choose smaller values")
    return warmup
