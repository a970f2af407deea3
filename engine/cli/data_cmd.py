"""``paperbot data fetch|import|list``: manage the candle cache."""

from __future__ import annotations

import argparse
import asyncio
import json

from engine import formatting as fmt
from engine.errors import ServiceError
from engine.service import PaperService
from engine.settings import Settings


def fetch(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot data fetch``; returns the exit status.

    Raises:
        ServiceError: an exchange that is not a ccxt id (with how to list them), bad input,
            or the exchange could not be reached.
    """
    from data.exchanges import UnknownExchangeError, check_exchange_id

    service = PaperService(settings)
    try:
        exchange = check_exchange_id((args.exchange or settings.exchange).strip().lower())
    except UnknownExchangeError as exc:
        raise ServiceError(str(exc)) from None
    report = asyncio.run(service.fetch_candles(exchange, args.symbol, args.timeframe,
                                               args.start, args.end))
    print(f"fetched {report.fetched:,} candles into {report.path}")
    if args.open_interest:
        oi = asyncio.run(service.fetch_open_interest(exchange, args.symbol, args.timeframe,
                                                     args.start, args.end))
        print(f"fetched {oi.fetched:,} open interest points into {oi.path}")
    return 0


def import_(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot data import``; returns the exit status."""
    exchange = (args.exchange or settings.exchange).lower()
    report = PaperService(settings).import_candles(args.file, exchange, args.symbol,
                                                   args.timeframe)
    print(f"imported {report.fetched:,} candles into {report.path}")
    return 0


def list_(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot data list``; returns the exit status."""
    entries = PaperService(settings).cached()
    if args.json:
        print(json.dumps([{
            "exchange": e.exchange, "symbol": e.symbol, "timeframe": e.timeframe,
            "first": e.first, "last": e.last, "rows": e.rows, "path": str(e.path),
            "gaps": [{"start": g.start, "end": g.end, "missing": g.missing} for g in e.gaps],
        } for e in entries]))
        return 0
    if not entries:
        print(f"no candles cached in {settings.data_dir}")
        return 0
    for e in entries:
        missing = sum(g.missing for g in e.gaps)
        print(f"{e.exchange:<12} {e.symbol:<12} {e.timeframe:<4} {fmt.iso(e.first)} → "
              f"{fmt.iso(e.last)}  {e.rows:>9,} candles  gaps: {len(e.gaps)} "
              f"({missing:,} missing)")
    return 0
