"""``paperbot strategies``: list discovered strategies with their parameters."""

from __future__ import annotations

import argparse
import json

from engine.service import PaperService
from engine.settings import Settings


def strategies(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot strategies``; returns the exit status."""
    found = PaperService(settings).strategies()
    if args.json:
        print(json.dumps([{"name": s.name, "description": s.description, "params": s.params,
                           "timeframes": s.timeframes, "source": s.source} for s in found]))
        return 0
    for s in found:
        print(f"{s.name}  [{', '.join(s.timeframes)}]  {s.description}")
        params = "  ".join(f"{k}={v!r}" for k, v in s.params.items())
        print(f"    params: {params or '(none)'}")
    return 0
