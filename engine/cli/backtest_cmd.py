"""``paperbot backtest``: run one backtest and print a summary table or one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from data.symbols import quote_currency
from engine import formatting as fmt
from engine.backtest_request import BacktestReport, BacktestRequest
from engine.errors import ServiceError
from engine.exit_reasons import exit_breakdown
from engine.risk.config import check_protect
from engine.service import PaperService
from engine.settings import Settings
from engine.store.store import Store
from engine.strategy import ParamError, parse_param_pairs


def add_protect_option(parser: argparse.ArgumentParser) -> None:
    """``--protect NAME=VALUE`` (repeatable) on ``backtest`` and ``forward``."""
    parser.add_argument("--protect", action="append", default=[], metavar="NAME=VALUE",
                        help="risk guard (repeatable): max_open_positions=N, cooldown=N, "
                             "stoploss_guard=K/N/M, daily_loss_limit_pct=X, "
                             "max_drawdown_pct=X, max_drawdown_flatten=true; off disables")


def add_leverage_option(parser: argparse.ArgumentParser) -> None:
    """``--leverage X`` on ``backtest`` and ``forward`` (perpetuals; docs/perpetuals.md)."""
    parser.add_argument("--leverage", type=float, metavar="X",
                        help="notional / margin on a perpetual (e.g. BTC/USDT:USDT), from 1 "
                             "(default) to the symbol's maximum; spot takes 1 only")


def protect_pairs(items: list[str]) -> dict[str, str]:
    """``--protect`` values → ``{name: text}``, each checked on its own (how they combine with
    the strategy's and the settings' protections is checked with the run).

    Raises:
        ServiceError: an item that is not ``name=value``, an unknown name or a bad value,
            naming ``--protect``.
    """
    return check_protect(items, "--protect")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Handle ``paperbot backtest``; returns the exit status."""
    try:
        params = parse_param_pairs(args.param)
    except ParamError as exc:
        raise ServiceError(str(exc)) from None
    protect = protect_pairs(args.protect)
    request = BacktestRequest(
        strategy=args.strategy, symbol=args.symbol, timeframe=args.timeframe,
        exchange=args.exchange, start=args.start, end=args.end, balance=args.balance,
        fee_bps=args.fee_bps, maker_fee_bps=args.maker_fee_bps,
        slippage_bps=args.slippage_bps, params=params, out_dir=args.out,
        charts=not args.no_charts, protect=protect, leverage=args.leverage,
    )
    report = asyncio.run(PaperService(settings).backtest(request))
    carlo = None
    if getattr(args, "monte_carlo", False):
        from engine.research.montecarlo import monte_carlo

        folder = report.json_path.parent if report.json_path else None
        carlo = monte_carlo([t.pnl for t in report.result.trades], report.result.config.balance,
                            args.mc_runs, args.mc_seed,
                            folder / "montecarlo.png" if folder else None,
                            f"{request.strategy} {request.symbol} · Monte Carlo",
                            settings.chart_theme)
    asyncio.run(_remember(settings, request, report))
    if args.json:
        out = report.to_json()
        if carlo is not None:
            out["monte_carlo"] = carlo.to_json()
        print(json.dumps(out, allow_nan=False))
    else:
        print(summary(report))
        if carlo is not None:
            from engine.research.montecarlo import monte_carlo_summary

            print(monte_carlo_summary(carlo))
    return 0


async def _remember(settings: Settings, request: BacktestRequest,
                    report: BacktestReport) -> None:
    """Store the backtest in the history when the run database exists (never creates one)."""
    if not Path(settings.db_path).is_file():
        return
    try:
        store = await Store.open(settings.db_path, create=False)
    except Exception as exc:  # the result matters more than its history entry
        print(f"warning: backtest not stored in the history: {exc}", file=sys.stderr)
        return
    try:
        await PaperService(settings, store=store).record_backtest(request, report, "cli")
    finally:
        await store.close()


def _leverage_text(cfg) -> str:
    """`` · leverage 5x (liquidation at 0.5 % maintenance margin)`` above leverage 1."""
    if cfg.leverage <= 1.0:
        return ""
    return (f" · leverage {cfg.leverage:g}x (liquidation at "
            f"{cfg.maintenance_margin_rate * 100:g} % maintenance margin)")


def summary(report: BacktestReport) -> str:
    """The human summary table of a backtest."""
    r = report.result
    m = r.metrics
    cfg = r.config
    quote = quote_currency(cfg.symbol)
    start = int(r.candles.timestamp[0])
    end = int(r.candles.timestamp[-1])
    params = " ".join(f"{k}={v}" for k, v in r.params.items())
    lines = [
        f"{r.strategy} on {cfg.symbol} {cfg.timeframe} ({cfg.exchange}) · "
        f"{fmt.iso(start)} → {fmt.iso(end)} UTC · {len(r.candles):,} candles "
        f"(+{r.warmup:,} warm-up) from {report.data_source}",
        f"params: {params or '(none)'}",
        f"fees: taker {cfg.fills.taker_fee_bps:g} bp, maker {cfg.fills.maker_fee_bps:g} bp, "
        f"slippage {cfg.fills.slippage_bps:g} bp · starting balance "
        f"{fmt.money(cfg.balance, quote)}" + _leverage_text(cfg),
        "",
    ]
    dd_span = f"{fmt.iso(m.max_drawdown_start) or '—'} → {fmt.iso(m.max_drawdown_end) or '—'}"
    period = "daily" if m.returns_period == "1d" else m.returns_period
    rows = [
        ("Total return", fmt.pct(m.total_return_pct),
         "Buy & hold", fmt.pct(m.buy_and_hold_return_pct)),
        ("CAGR", fmt.pct(m.cagr_pct) if not m.short_window else "— (< 90 days)",
         "Final equity", fmt.money(r.final_equity, quote)),
        ("Max drawdown", fmt.pct(m.max_drawdown_pct), "  from → to", dd_span),
        (f"Sharpe ({period}, ann.)", fmt.number(m.sharpe),
         "Sortino", fmt.number(m.sortino)),
        ("Calmar", fmt.number(m.calmar) if not m.short_window else "— (< 90 days)",
         "Exposure", fmt.pct(m.exposure_pct, signed=False)),
        ("Trades", f"{m.num_trades:,}", "Win rate", fmt.pct(m.win_rate_pct, signed=False)),
        ("Profit factor", fmt.number(m.profit_factor),
         "Expectancy", fmt.money(m.expectancy, quote)),
        ("Avg win", fmt.money(m.avg_win, quote), "Avg loss", fmt.money(m.avg_loss, quote)),
        ("Best trade", fmt.pct(m.best_trade_pct), "Worst trade", fmt.pct(m.worst_trade_pct)),
        ("Avg duration", fmt.duration(m.avg_duration_ms),
         "Fees paid", fmt.money(m.fees_paid, quote)),
    ]
    liquidated = sum(1 for t in r.trades if t.exit_reason == "liquidation")
    if m.funding_paid or liquidated:  # perpetuals: funding is its own line
        rows.append(("Funding paid", fmt.money(m.funding_paid, quote),
                     "Liquidations", f"{liquidated:,}"))
    width = max(len(a) for a, *_ in rows)
    for a, b, c, d in rows:
        lines.append(f"  {a:<{width}}  {b:>16}    {c:<12} {d}")
    lines.append("")
    breakdown = exit_breakdown(r.trades, r.exits)
    if breakdown:
        lines.append("exits: " + " · ".join(
            f"{fmt.reason_text(k)} {v['trades']} ({v['wins']} W, {fmt.signed_money(v['pnl'])}"
            + (f", {v['exits']} fills" if v['exits'] != v['trades'] else "") + ")"
            for k, v in breakdown.items()))
    lines.append(f"SL/TP in one candle: {r.exit_counts.drill_down} resolved by drill-down, "
                 f"{r.exit_counts.conservative} by the conservative fallback (stop-loss)")
    protections = cfg.protections.text() if cfg.protections is not None else "none"
    if r.guard_blocks:
        blocks = ", ".join(f"{name} {count:,}" for name, count in r.guard_blocks.items())
        lines.append(f"protections: {protections} · entries blocked: {blocks}")
    if r.rejections:
        lines.append(f"rejected signals: {len(r.rejections)} (first: {r.rejections[0].reason})")
    if not r.lookahead:
        lines.append("look-ahead check: clean (indicators unchanged on truncated candles)")
    for warning in report.warnings:
        lines.append(f"warning: {warning}")
    if report.charts:
        lines.append("charts: " + ", ".join(str(p) for p in report.charts.values()))
    if report.trades_csv:
        lines.append(f"trades: {report.trades_csv}")
    return "\n".join(lines)
