"""``paperbot backtests``: the backtest history (the same rows ``/backtest history`` lists).

``paperbot backtests`` lists the newest; ``paperbot backtests ID`` prints one with its
parameters, figures and files. Backtests run from the command line are stored too when the run
database exists (``backtest_cmd``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import formatting as fmt
from engine.cli.runs_cmd import with_store
from engine.errors import ServiceError
from engine.service import PaperService
from engine.settings import Settings
from engine.store.backtests import StoredBacktest


def add_parsers(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``paperbot backtests``."""
    hist = sub.add_parser("backtests", help="stored backtests (newest first), or one by id")
    hist.add_argument("id", nargs="?", type=int, help="show this backtest")
    hist.add_argument("--limit", type=int, default=20, help="how many to list (default 20)")
    hist.add_argument("--db", type=Path, help="run database (PAPERBOT_DB_PATH)")
    hist.add_argument("--json", action="store_true")
    add_common(hist)
    hist.set_defaults(handler=backtests)


def _with_store(settings: Settings, job: Callable[[PaperService], Any]) -> Any:
    return with_store(settings, job,
                      "there are no stored backtests (set PAPERBOT_DB_PATH or --db)")


def backtests(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot backtests [ID]``."""
    if args.id is not None:
        stored = asyncio.run(_with_store(settings, lambda s: s.stored_backtest(args.id)))
        if args.json:
            print(json.dumps(_record(stored)))
        else:
            print(describe(stored))
        return 0
    if args.limit < 1:
        raise ServiceError(f"--limit must be at least 1, got {args.limit}")
    items, total = asyncio.run(_with_store(settings, lambda s: s.backtest_history(args.limit)))
    if args.json:
        print(json.dumps([_record(b) for b in items]))
        return 0
    if not items:
        print("no stored backtests")
    for b in items:
        m = b.result.get("metrics", {})
        print(f"#{b.id:<4} {fmt.iso(b.created_at)}  {b.strategy:<18} {b.symbol:<12} "
              f"{b.timeframe:<4} {fmt.iso(b.result.get('start'))[:10]} → "
              f"{fmt.iso(b.result.get('end'))[:10]}  {fmt.pct(m.get('total_return_pct')):>10} "
              f" {m.get('num_trades', 0):>5} trades  {b.actor}")
    if total > len(items):
        print(f"({len(items)} of {total}; --limit for more)", file=sys.stderr)
    return 0


def describe(b: StoredBacktest) -> str:
    """One stored backtest: what was asked, what came out, where its files are."""
    m = b.result.get("metrics", {})
    asked = " ".join(f"{k}={v}" for k, v in b.request.items() if v not in (None, {}, ""))
    lines = [f"backtest #{b.id} · {fmt.iso(b.created_at)} UTC by {b.actor}",
             f"asked: {asked}",
             f"{b.strategy} on {b.symbol} {b.timeframe} ({b.exchange}) · "
             f"{fmt.iso(b.result.get('start'))} → {fmt.iso(b.result.get('end'))} UTC",
             f"return {fmt.pct(m.get('total_return_pct'))} · max drawdown "
             f"{fmt.pct(m.get('max_drawdown_pct'))} · Sharpe (daily, ann.) "
             f"{fmt.ratio(m.get('sharpe'))} · {m.get('num_trades', 0)} trades · win rate "
             f"{fmt.pct(m.get('win_rate_pct'), signed=False)}"]
    for kind, path in (b.result.get("charts") or {}).items():
        lines.append(f"{kind}: {path}{'' if Path(path).exists() else ' (gone)'}")
    return "\n".join(lines)


def _record(b: StoredBacktest) -> dict[str, Any]:
    return {"id": b.id, "created_at": b.created_at, "actor": b.actor, "request": b.request,
            "result": b.result, "out_dir": b.out_dir}
