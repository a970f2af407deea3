"""``paperbot optimize | studies | walkforward | lookahead``: research from the terminal.

Each command calls ``engine.research.service.ResearchService`` (the same service the bot
uses) and prints a table, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from data.timeframes import STANDARD_TIMEFRAMES
from engine import formatting as fmt
from engine.backtest_request import BacktestRequest
from engine.errors import ServiceError
from engine.research.search import OBJECTIVES, SAMPLERS
from engine.settings import Settings
from engine.strategy import ParamError, parse_param_pairs


def _request_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strategy", required=True, help="strategy name (see `paperbot strategies`)")
    p.add_argument("--symbol", required=True, help="unified symbol, e.g. BTC/USDT")
    p.add_argument("--timeframe", help=f"base timeframe ({' '.join(STANDARD_TIMEFRAMES)})")
    p.add_argument("--exchange", help="exchange id (default PAPERBOT_EXCHANGE)")
    p.add_argument("--start", help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--end", help="last day, YYYY-MM-DD (UTC), included")
    p.add_argument("--balance", type=float, help="starting balance in quote currency")
    p.add_argument("--fee-bps", type=float, help="taker fee in basis points (default 10)")
    p.add_argument("--slippage-bps", type=float, help="slippage in basis points (default 0)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="parameter held fixed (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _search_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", nargs="+", metavar="NAME=RANGE",
                   help="ranges, e.g. fast=5:50 slow=20:200:10 (default: the strategy's "
                        "param_space)")
    p.add_argument("--objective", default="sharpe", choices=list(OBJECTIVES),
                   help="what to maximise (default sharpe)")
    p.add_argument("--min-trades", type=int, default=20,
                   help="trials with fewer trades are pruned (default 20)")
    p.add_argument("--trials", type=int, default=200, help="trials (default 200)")
    p.add_argument("--sampler", default="tpe", choices=list(SAMPLERS),
                   help="Optuna sampler (default tpe)")
    p.add_argument("--seed", type=int, default=42, help="sampler seed (default 42)")
    p.add_argument("--workers", type=int,
                   help="local worker processes (default: one per CPU; ignored with "
                        "PAPERBOT_DASK_SCHEDULER)")


def add_parsers(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register the research subcommands on ``sub`` (the ``paperbot`` subparsers)."""
    opt = sub.add_parser("optimize", help="optimise a strategy's parameters (Optuna study)")
    _request_options(opt)
    _search_options(opt)
    opt.add_argument("--study", help="study name (default: from the request); the same name "
                                     "resumes the study")
    opt.add_argument("--study-db", type=Path,
                     help="study database (PAPERBOT_STUDY_DB)")
    opt.add_argument("--no-charts", action="store_true", help="skip the heatmap")
    add_common(opt)
    opt.set_defaults(handler=optimize)

    st = sub.add_parser("studies", help="list stored optimisation studies")
    st.add_argument("--json", action="store_true")
    st.add_argument("--study-db", type=Path,
                    help="study database (PAPERBOT_STUDY_DB)")
    add_common(st)
    st.set_defaults(handler=studies)

    wf = sub.add_parser("walkforward", help="walk-forward validation (optimise, test, roll)")
    _request_options(wf)
    _search_options(wf)
    wf.add_argument("--train", default="90d", help="train window, e.g. 90d, 12w, 2000h")
    wf.add_argument("--test", default="30d", help="test window, e.g. 30d")
    wf.add_argument("--anchored", action="store_true",
                    help="every train window starts at the first candle")
    add_common(wf)
    wf.set_defaults(handler=walkforward, trials=50)

    la = sub.add_parser("lookahead", help="full look-ahead check with truncated backtests")
    _request_options(la)
    la.add_argument("--cuts", type=int, default=10, help="truncated backtests (default 10)")
    add_common(la)
    la.set_defaults(handler=lookahead)


def _backtest_request(args: argparse.Namespace) -> BacktestRequest:
    try:
        params = parse_param_pairs(args.param)
    except ParamError as exc:
        raise ServiceError(str(exc)) from None
    return BacktestRequest(strategy=args.strategy, symbol=args.symbol,
                           timeframe=args.timeframe, exchange=args.exchange, start=args.start,
                           end=args.end, balance=args.balance, fee_bps=args.fee_bps,
                           slippage_bps=args.slippage_bps, params=params, charts=False)


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    if args.json or not sys.stderr.isatty():
        return None
    return lambda text: print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)


def _service(settings: Settings) -> Any:
    from engine.research.service import ResearchService

    return ResearchService(settings)


def optimize(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot optimize``."""
    from engine.research.optimize import OptimizeRequest

    if args.study_db is not None:
        settings = settings.model_copy(update={"study_db": args.study_db})
    request = OptimizeRequest(_backtest_request(args), tuple(args.space or ()) or None,
                              args.objective, args.min_trades, args.trials, args.sampler,
                              args.study, args.seed, args.workers, not args.no_charts)
    report = asyncio.run(_service(settings).optimize(request, progress=_progress(args)))
    if _progress(args):
        print(file=sys.stderr)
    print(json.dumps(report.to_json(), default=str) if args.json else optimize_summary(report))
    return 0


def optimize_summary(report: Any) -> str:
    """The table ``paperbot optimize`` prints."""
    lines = [
        f"study {report.study} (#{report.study_id}, {'resumed' if report.resumed else 'new'}) "
        f"· {report.strategy} on {report.symbol} {report.timeframe} ({report.exchange}) · "
        f"{fmt.iso(report.start)} → {fmt.iso(report.end)} UTC",
        f"space: {report.space} · objective {report.objective} · sampler {report.sampler} · "
        f"{report.executor}",
        f"trials: {report.complete} complete, {report.pruned} pruned, {report.failed} failed "
        f"({report.ran_now} run now in {report.elapsed_s:.1f} s) · {report.db_path}",
        "",
    ]
    if not report.top:
        lines.append("no trial met the constraints (see --min-trades)")
    else:
        names = list(report.top[0].params)
        header = f"  {'#':>5}  {report.objective:>10}  {'return %':>9}  {'max dd %':>9}  " \
                 f"{'trades':>6}  " + "  ".join(names)
        lines.append(header)
        for t in report.top:
            m = t.metrics or {}
            lines.append(f"  {t.number:>5}  {t.value:>10.4g}  "
                         f"{m.get('total_return_pct', 0):>9.2f}  "
                         f"{m.get('max_drawdown_pct', 0):>9.2f}  {m.get('num_trades', 0):>6}  "
                         + "  ".join(f"{t.params[n]}" for n in names))
        best = report.best
        lines += ["", "best: " + " ".join(f"{k}={v}" for k, v in best.params.items())]
        m = best.metrics or {}
        lines.append(
            f"  return {fmt.pct(m.get('total_return_pct'))} · CAGR {fmt.pct(m.get('cagr_pct'))}"
            f" · max drawdown {fmt.pct(m.get('max_drawdown_pct'))} · Sharpe "
            f"{_metric(m.get('sharpe'))} · Sortino {_metric(m.get('sortino'))} · Calmar "
            f"{_metric(m.get('calmar'))} · profit factor {_metric(m.get('profit_factor'))} · "
            f"win rate {fmt.pct(m.get('win_rate_pct'), signed=False)} · trades "
            f"{m.get('num_trades')} · fees {fmt.number(m.get('fees_paid'))} · final equity "
            f"{fmt.number(m.get('final_equity'))}")
    if report.importance:
        lines.append("importance: " + ", ".join(f"{k} {v:.0%}"
                                                for k, v in report.importance.items()))
    if report.heatmap:
        lines.append(f"heatmap: {report.heatmap}")
    lines += [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def _metric(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def studies(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot studies``."""
    if args.study_db is not None:
        settings = settings.model_copy(update={"study_db": args.study_db})
    views = asyncio.run(_service(settings).studies())
    if args.json:
        print(json.dumps([asdict(v) for v in views], default=str))
        return 0
    if not views:
        print("no studies yet; run `paperbot optimize`")
    for v in views:
        best = "—" if v.best_value is None else f"{v.best_value:.4g}"
        params = " ".join(f"{k}={val}" for k, val in v.best_params.items())
        print(f"#{v.study_id:<4} {v.name}  {v.strategy} {v.symbol} {v.timeframe} · "
              f"{v.trials} trials · best {v.objective} {best} ({params}) · {v.created}")
    return 0


def walkforward(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot walkforward``."""
    from engine.research.walkforward import WalkForwardRequest, walkforward_summary

    request = WalkForwardRequest(_backtest_request(args), tuple(args.space or ()) or None,
                                 args.objective, args.min_trades, args.trials, args.sampler,
                                 args.seed, args.workers, args.train, args.test, args.anchored)
    report = asyncio.run(_service(settings).walkforward(request, progress=_progress(args)))
    if _progress(args):
        print(file=sys.stderr)
    print(json.dumps(report.to_json(), default=str) if args.json
          else walkforward_summary(report))
    return 0


def lookahead(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot lookahead``: exit status 1 when a leak is found."""
    from engine.research.lookahead_job import lookahead_summary

    report = asyncio.run(_service(settings).lookahead(_backtest_request(args), args.cuts,
                                                      progress=_progress(args)))
    if _progress(args):
        print(file=sys.stderr)
    print(json.dumps(report.to_dict()) if args.json else lookahead_summary(report))
    return 0 if report.clean else 1
