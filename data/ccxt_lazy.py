"""ccxt one exchange at a time.

``import ccxt`` (and ``import ccxt.async_support``) runs package ``__init__`` files that import
every one of ccxt's ~110 exchange modules: about 88 MB of resident memory, most of the always-on
process, to talk to one or two exchanges. ``load()`` installs the two packages as modules built
from ccxt's own ``__init__`` sources minus the per-exchange import lines — the base classes,
errors, precision helpers and the ``exchanges`` list are exactly ccxt's — and each exchange
class is imported the first time it is asked for (``package.bybit``), from ccxt's own module.
ccxt stays the library that does the work; this only chooses what it loads.

When ccxt was already imported the usual way, that import is used as it is; if building the
lean packages fails (a ccxt release laid out differently), the usual import is done instead,
with a log line. Measured (``bench/forward_latency.py``): the engine process with 20 runs holds
86.7 MB instead of 136.4 MB.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

#: The lines of ccxt's package files that import one exchange each: ``from ccxt.bybit import
#: bybit`` (or ``ccxt.async_support.bybit``) followed by a noqa comment
_EXCHANGE_LINE = re.compile(r"^from (ccxt(?:\.async_support)?)\.(\w+) import (\w+)\s+# noqa")


def load(async_: bool = True) -> Any:
    """The ``ccxt.async_support`` package (``async_=False``: ``ccxt``), with exchange classes
    imported on first use (``load().bybit``). Never raises for layout reasons: falls back to
    the full import."""
    name = "ccxt.async_support" if async_ else "ccxt"
    if name in sys.modules:
        return sys.modules[name]
    try:
        if "ccxt" not in sys.modules:
            _lean_package("ccxt")
        if async_:
            _lean_package("ccxt.async_support")
    except Exception:  # a different ccxt layout: load it all rather than fail
        log.warning("ccxt: lean import failed, importing every exchange", exc_info=True)
        for key in [k for k in sys.modules if k == "ccxt" or k.startswith("ccxt.")]:
            del sys.modules[key]
    return importlib.import_module(name)


def exchange_ids() -> list[str]:
    """Every exchange id ccxt knows (``ccxt.exchanges``)."""
    return list(load(async_=False).exchanges)


def errors() -> Any:
    """ccxt's error classes (``ccxt.base.errors``: ``NetworkError``, ``BaseError``…)."""
    load(async_=False)
    return importlib.import_module("ccxt.base.errors")


def _lean_package(name: str) -> ModuleType:
    """Install ``name`` (``ccxt`` or ``ccxt.async_support``) from its ``__init__`` source
    without the per-exchange imports; exchanges load through a module ``__getattr__``."""
    spec = importlib.util.find_spec(name)  # locates the package without running it
    if spec is None or spec.origin is None or not spec.submodule_search_locations:
        raise ImportError(f"{name} is not an installed package")
    source = Path(spec.origin).read_text(encoding="utf-8")
    kept = []
    for line in source.splitlines():
        match = _EXCHANGE_LINE.match(line)
        if match is None or match.group(2) != match.group(3):
            kept.append(line)
    module = ModuleType(name, "ccxt, exchange modules loaded on first use (data.ccxt_lazy)")
    module.__file__ = spec.origin
    module.__path__ = list(spec.submodule_search_locations)
    module.__package__ = name
    module.__spec__ = spec
    sys.modules[name] = module
    try:
        exec(compile("\n".join(kept), spec.origin, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    known = frozenset(module.__dict__.get("exchanges", ()))

    def __getattr__(attr: str) -> Any:  # PEP 562: only for names not set yet
        if attr not in known:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        cls = getattr(importlib.import_module(f"{name}.{attr}"), attr)
        setattr(module, attr, cls)
        return cls

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    if "." in name:
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, module)
    return module
