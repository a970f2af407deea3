"""The ``paperbot`` command line: argument parsing and dispatch.

Each subcommand calls ``engine.service.PaperService``. User errors (``ServiceError``, bad
arguments) print one line to stderr and exit with status 2, without a traceback; invalid
settings print one line per bad variable. Printed errors and log lines are scrubbed of
credentials (``engine.errors.scrub_secrets``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from data.timeframes import STANDARD_TIMEFRAMES
from engine.errors import ServiceError, install_log_scrubber, scrub_secrets
from engine.settings import Settings, SettingsError, load_settings

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: ``error: …`` (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` on one line with where to find help, and exit with status 2."""
        text = " ".join(scrub_secrets(message).split())
        self.exit(EXIT_USAGE, f"error: {text} (see {self.prog} --help)\n")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="candle cache folder (PAPERBOT_DATA_DIR)")
    p.add_argument("--strategy-dir", type=Path,
                   help="extra folder of strategy files (PAPERBOT_STRATEGY_DIR)")
    p.add_argument("--offline", action="store_true", default=None,
                   help="never fetch candles from the exchange")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to document the commands)."""
    from engine.cli import (
        backtest_cmd,
        control_cmd,
        data_cmd,
        forward_cmd,
        history_cmd,
        info_cmd,
        research_cmd,
    )

    parser = _Parser(
        prog="paperbot",
        description="Crypto paper trading: backtests, forward tests and a Discord bot.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bt = sub.add_parser("backtest", help="backtest a strategy on cached candles")
    bt.add_argument("--strategy", required=True, help="strategy name (see `paperbot strategies`)")
    bt.add_argument("--symbol", required=True, help="unified symbol, e.g. BTC/USDT")
    bt.add_argument("--timeframe", help=f"base timeframe ({' '.join(STANDARD_TIMEFRAMES)}); "
                                        "default: the strategy's")
    bt.add_argument("--exchange", help="exchange id (default PAPERBOT_EXCHANGE, binance)")
    bt.add_argument("--start", help="first day traded, YYYY-MM-DD (UTC)")
    bt.add_argument("--end", help="last day traded, YYYY-MM-DD (UTC), included")
    bt.add_argument("--balance", type=float, help="starting balance in quote currency")
    bt.add_argument("--fee-bps", type=float, help="taker fee in basis points (default 10)")
    bt.add_argument("--maker-fee-bps", type=float, help="maker fee (take-profit fills)")
    bt.add_argument("--slippage-bps", type=float, help="slippage in basis points (default 0)")
    bt.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="strategy parameter override (repeatable)")
    backtest_cmd.add_protect_option(bt)
    backtest_cmd.add_leverage_option(bt)
    bt.add_argument("--out", type=Path, help="folder for charts and the trades CSV")
    bt.add_argument("--no-charts", action="store_true", help="skip charts and files")
    bt.add_argument("--json", action="store_true", help="print one JSON object")
    bt.add_argument("--traceback", action="store_true",
                    help="when the strategy raises, print the full traceback too")
    bt.add_argument("--monte-carlo", action="store_true",
                    help="also resample the trades (shuffle and bootstrap) and report "
                         "percentiles of return and drawdown, with a fan chart")
    bt.add_argument("--mc-runs", type=int, default=1000, help="Monte Carlo runs (default 1000)")
    bt.add_argument("--mc-seed", type=int, default=7, help="Monte Carlo seed (default 7)")
    bt.add_argument("--db", type=Path, help="run database whose backtest history records it, "
                                            "when it exists (PAPERBOT_DB_PATH)")
    _add_common(bt)
    bt.set_defaults(handler=backtest_cmd.run)

    data = sub.add_parser("data", help="candle cache: fetch, import, list")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    fetch = dsub.add_parser("fetch", help="download candles through ccxt into the cache")
    fetch.add_argument("--exchange", help="exchange id (default PAPERBOT_EXCHANGE)")
    fetch.add_argument("--symbol", required=True)
    fetch.add_argument("--timeframe", required=True)
    fetch.add_argument("--start", required=True, help="YYYY-MM-DD (UTC)")
    fetch.add_argument("--end", help="YYYY-MM-DD (UTC), included; default: now")
    fetch.add_argument("--open-interest", action="store_true",
                       help="also fetch open interest history (perpetuals, e.g. BTC/USDT:USDT; "
                            "sampled at the timeframe, 5m at the finest)")
    fetch.add_argument("--funding", action="store_true",
                       help="also fetch funding rate history (perpetuals)")
    _add_common(fetch)
    fetch.set_defaults(handler=data_cmd.fetch)
    imp = dsub.add_parser("import", help="import a CSV/Parquet candle file into the cache")
    imp.add_argument("file", type=Path)
    imp.add_argument("--exchange", help="exchange id (default PAPERBOT_EXCHANGE)")
    imp.add_argument("--symbol", required=True)
    imp.add_argument("--timeframe", required=True)
    _add_common(imp)
    imp.set_defaults(handler=data_cmd.import_)
    lst = dsub.add_parser("list", help="show what the cache holds")
    lst.add_argument("--json", action="store_true")
    _add_common(lst)
    lst.set_defaults(handler=data_cmd.list_)

    st = sub.add_parser("strategies", help="list strategies and their parameters")
    st.add_argument("--json", action="store_true")
    _add_common(st)
    st.set_defaults(handler=info_cmd.strategies)

    forward_cmd.add_parsers(sub, _add_common)
    control_cmd.add_parsers(sub, _add_common)
    research_cmd.add_parsers(sub, _add_common)
    history_cmd.add_parsers(sub, _add_common)

    run = sub.add_parser("run", help="the always-on service: Discord bot + forward engine")
    run.add_argument("--db", type=Path, help="run database (PAPERBOT_DB_PATH)")
    _add_common(run)
    run.set_defaults(handler=run_service)

    return parser


def run_service(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot run`` (the same as ``python -m bot``)."""
    import asyncio

    import discord

    from bot.app import check_bot_settings, serve

    check_bot_settings(settings)
    logging.getLogger().setLevel(settings.log_level.upper())
    try:
        asyncio.run(serve(settings))
    except discord.LoginFailure:
        raise ServiceError("Discord refused the token (DISCORD_TOKEN); reset it in the "
                           "developer portal") from None
    return 0


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the common command-line options."""
    return load_settings(
        data_dir=getattr(args, "data_dir", None),
        strategy_dir=getattr(args, "strategy_dir", None),
        offline=getattr(args, "offline", None),
        db_path=getattr(args, "db", None),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``paperbot`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_log_scrubber()
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        settings = settings_from(args)
        return handler(args, settings)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"error: {' '.join(scrub_secrets(problem).split())}", file=sys.stderr)
        return EXIT_USAGE
    except ServiceError as exc:
        trace = getattr(exc, "traceback_text", None)
        if trace and getattr(args, "traceback", False):  # backtest --traceback
            print(scrub_secrets(trace), file=sys.stderr, end="")
        print(f"error: {' '.join(scrub_secrets(str(exc)).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `paperbot runs | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
