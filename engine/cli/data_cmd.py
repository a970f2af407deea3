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

    With ``--open-interest`` / ``--funding`` (perpetuals only, checked before anything is
    fetched) the open interest and funding rate history of the same span follow the candles.

    Raises:
        ServiceError: an exchange that is not a ccxt id (with how to list them), bad input,
            a spot symbol with ``--open-interest``/``--funding``, or the exchange could not be
            reached.
    """
    from data.exchanges import UnknownExchangeError, check_exchange_id
    from data.perp_store import describe_path
    from engine.service_data import check_perpetual

    service = PaperService(settings)
    try:
        exchange = check_exchange_id((args.exchange or settings.exchange).strip().lower())
    except UnknownExchangeError as exc:
        raise ServiceError(str(exc)) from None
    kinds = [k for k, wanted in (("open_interest", args.open_interest),
                                 ("funding", args.funding)) if wanted]
    if kinds:
        check_perpetual(exchange, args.symbol,
                        "--open-interest and --funding are for perpetuals")
    report = asyncio.run(service.fetch_candles(exchange, args.symbol, args.timeframe,
                                               args.start, args.end))
    print(f"fetched {report.fetched:,} candles into {report.path}")
    for kind in kinds:
        extra = asyncio.run(service.fetch_perp_history(exchange, args.symbol, args.timeframe,
                                                       args.start, args.end, kind))
        print(f"fetched {extra.fetched:,} {describe_path(extra.path)} into {extra.path}")
    return 0


def import_(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot data import``; returns the exit status."""
    from data.perp_store import describe_path

    exchange = (args.exchange or settings.exchange).lower()
    report = PaperService(settings).import_candles(args.file, exchange, args.symbol,
                                                   args.timeframe)
    print(f"imported {report.fetched:,} {describe_path(report.path)} into {report.path}")
    return 0


def list_(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot data list``; returns the exit status."""
    from data.perp_store import describe_path

    entries = PaperService(settings).cached()
    if args.json:
        print(json.dumps([{
            "kind": e.kind, "exchange": e.exchange, "symbol": e.symbol, "timeframe": e.timeframe,
            "first": e.first, "last": e.last, "rows": e.rows, "path": str(e.path),
            "gaps": [{"start": g.start, "end": g.end, "missing": g.missing} for g in e.gaps],
        } for e in entries]))
        return 0
    if not entries:
        print(f"no candles cached in {settings.data_dir}")
        return 0
    for e in entries:
        missing = sum(g.missing for g in e.gaps)
        print(f"{e.exchange:<12} {e.symbol:<14} {e.timeframe:<4} {fmt.iso(e.first)} → "
              f"{fmt.iso(e.last)}  {e.rows:>9,} {describe_path(e.path)}  gaps: {len(e.gaps)} "
              f"({missing:,} missing)")
    return 0
