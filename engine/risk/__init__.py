"""Risk guards (protections): one module per guard behind one interface (``lock.Guard``).

``config.Protections`` says which guards a run has (parsed from ``name=value`` text, settings
and the strategy's ``protections`` attribute); ``guards.Guards`` holds their state and is
consulted by the core step before every entry (DESIGN §4c).
"""

from engine.risk.config import (
    NAMES,
    ProtectionError,
    Protections,
    for_run,
    parse_pairs,
    resolve,
)
from engine.risk.guards import Guards
from engine.risk.lock import Lock

__all__ = ["NAMES", "Guards", "Lock", "ProtectionError", "Protections", "for_run",
           "parse_pairs", "resolve"]
