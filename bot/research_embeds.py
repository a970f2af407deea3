"""Embeds of the research commands: pure functions from research reports to ``discord.Embed``.

Kept apart from ``bot/embeds.py`` (backtests, alerts, reads); same phone-first style: short
titles, a few inline fields, code blocks for tables.
"""

from __future__ import annotations

from typing import Any

import discord

from bot.embeds import BLUE, GREEN, ORANGE, RED
from bot.errors import fit_text
from engine import formatting as fmt

DESCRIPTION_LIMIT = 4000


def _params(params: dict[str, Any] | None) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in (params or {}).items()) or "—"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _value(value: Any) -> str:
    return "—" if value is None else f"{float(value):.4g}"


def optimize(report: Any) -> discord.Embed:
    """``/optimize run``: top-10 table, best parameters with their metrics, importance."""
    best = report.best
    m = (best.metrics or {}) if best else {}
    embed = discord.Embed(
        title=f"🔬 {report.strategy} · {report.symbol} {report.timeframe} · best "
              f"{report.objective} {_value(best.value if best else None)}",
        colour=GREEN if best and m.get("total_return_pct", 0) >= 0 else
        (RED if best else ORANGE))
    state = "resumed" if report.resumed else "new"
    lines = [f"study `{report.study}` #{report.study_id} ({state})",
             f"{fmt.iso(report.start)} → {fmt.iso(report.end)} UTC · `{report.space}`"]
    if report.top:
        names = list(report.top[0].params)
        table = [f"{'#':>4} {report.objective[:7]:>7} {'ret%':>7} {'dd%':>6} {'n':>4}  "
                 + " ".join(names)]
        for t in report.top:
            tm = t.metrics or {}
            table.append(f"{t.number:>4} {t.value:>7.3g} {tm.get('total_return_pct', 0):>7.1f} "
                         f"{tm.get('max_drawdown_pct', 0):>6.1f} {tm.get('num_trades', 0):>4}  "
                         + " ".join(_short(t.params[n]) for n in names))
        lines.append("```\n" + "\n".join(table) + "\n```")
    else:
        lines.append("No trial met the constraints (minimum trades, valid parameters).")
    embed.description = fit_text("\n".join(lines), DESCRIPTION_LIMIT)
    if best:
        embed.add_field(name="Best parameters", value=f"`{_params(best.params)}`", inline=False)
        for name, key, kind in (("Return", "total_return_pct", "pct"),
                                ("Max drawdown", "max_drawdown_pct", "pct"),
                                ("Sharpe", "sharpe", "num"), ("Sortino", "sortino", "num"),
                                ("Calmar", "calmar", "num"),
                                ("Profit factor", "profit_factor", "num"),
                                ("Win rate", "win_rate_pct", "pct"),
                                ("Trades", "num_trades", "int")):
            raw = m.get(key)
            value = (fmt.pct(raw) if kind == "pct" else str(raw) if kind == "int"
                     else raw if isinstance(raw, str) else fmt.number(raw))
            embed.add_field(name=name, value=value or "—", inline=True)
    if report.importance:
        embed.add_field(name="Importance", value=" · ".join(
            f"{k} {v:.0%}" for k, v in report.importance.items()), inline=False)
    if report.heatmap:
        embed.set_image(url="attachment://heatmap.png")
    embed.set_footer(text=f"{report.complete} complete · {report.pruned} pruned · "
                          f"{report.failed} failed · {report.executor} · "
                          f"{report.elapsed_s:.0f} s")
    return embed


def studies(views: list[Any]) -> discord.Embed:
    """``/optimize history``: the newest studies."""
    embed = discord.Embed(title="Optimisation studies", colour=BLUE)
    if not views:
        embed.description = "No studies yet. Start one with /optimize run."
    for v in views[:15]:
        embed.add_field(
            name=f"#{v.study_id} · {v.strategy} · {v.symbol} {v.timeframe}"[:256],
            value=fit_text(f"`{v.name}` · {v.trials} trials · best {v.objective} "
                           f"{_value(v.best_value)} · `{_params(v.best_params)}` · "
                           f"{v.created}", 1024),
            inline=False)
    return embed


def walkforward(report: Any) -> discord.Embed:
    """``/walkforward``: per-fold in-sample vs out-of-sample, overall, efficiency."""
    m = report.overall or {}
    ret = m.get("total_return_pct")
    embed = discord.Embed(
        title=f"🚶 Walk-forward · {report.strategy} · {report.symbol} {report.timeframe}",
        colour=GREEN if ret is not None and ret >= 0 else RED)
    rows = [f"{'fold':<4} {'test from':<10} {'IS':>6} {'OOS':>6} {'OOS%':>7}"]
    for k, f in enumerate(report.folds, 1):
        oos = f.out_of_sample or {}
        rows.append(f"{k:<4} {fmt.iso(f.fold.test_start)[:10]:<10} {_value(f.in_value):>6} "
                    f"{_value(f.out_value):>6} "
                    f"{_value(oos.get('total_return_pct')):>7}")
    embed.description = fit_text(
        f"{'anchored' if report.anchored else 'rolling'} · `{report.space}` · "
        f"{report.objective} (IS = in-sample, OOS = out-of-sample)\n```\n"
        + "\n".join(rows) + "\n```", DESCRIPTION_LIMIT)
    embed.add_field(name="OOS return", value=fmt.pct(ret))
    embed.add_field(name="OOS max drawdown", value=fmt.pct(m.get("max_drawdown_pct")))
    embed.add_field(name="OOS Sharpe", value=fmt.number(m.get("sharpe")))
    embed.add_field(name="OOS trades", value=str(m.get("num_trades", "—")))
    embed.add_field(name="WF efficiency", value=_value(report.efficiency))
    if report.chart:
        embed.set_image(url="attachment://walkforward.png")
    embed.set_footer(text=f"{len(report.folds)} folds · {report.executor} · "
                          f"{report.elapsed_s:.0f} s")
    return embed


def lookahead(report: Any) -> discord.Embed:
    """``/lookahead``: clean, or what changed without the future."""
    lines = []
    for cut in report.cuts:
        state = "✅" if cut.mismatch is None else f"❌ {cut.mismatch}"
        lines.append(f"cut {fmt.iso(cut.cut_time)} · {cut.compared} trades · {state}")
    lines += [f"❌ {f.describe()}" for f in report.indicators]
    embed = discord.Embed(
        title=f"{'✅ No look-ahead' if report.clean else '⚠️ Look-ahead found'} · "
              f"{report.strategy} · {report.symbol} {report.timeframe}",
        description=fit_text("\n".join(lines), DESCRIPTION_LIMIT),
        colour=GREEN if report.clean else RED)
    embed.set_footer(text=f"{report.candles:,} candles · {report.trades} trades · "
                          "truncated backtests must give the same trades")
    return embed


def monte_carlo(report: Any) -> discord.Embed:
    """The Monte Carlo button's answer: percentiles per method and the fan chart."""
    embed = discord.Embed(title=fit_text(f"🎲 {report.title}", 256), colour=BLUE)
    embed.description = (f"{report.runs:,} runs each · seed {report.seed} · "
                         f"{report.trades} trades · actual return "
                         f"{fmt.pct(report.actual_return_pct)}, max drawdown (closed trades) "
                         f"{fmt.pct(report.actual_drawdown_pct)}")
    for m in report.methods:
        r, d = m.final_return_pct, m.max_drawdown_pct
        embed.add_field(name=f"{m.method} · return p5 / p50 / p95",
                        value=f"{fmt.pct(r[0])} / {fmt.pct(r[1])} / {fmt.pct(r[2])}",
                        inline=False)
        embed.add_field(name=f"{m.method} · max drawdown p5 / p50 / p95",
                        value=f"{fmt.pct(d[0])} / {fmt.pct(d[1])} / {fmt.pct(d[2])}",
                        inline=False)
    if report.chart:
        embed.set_image(url="attachment://montecarlo.png")
    return embed
