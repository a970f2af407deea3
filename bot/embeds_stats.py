"""Embeds of the statistics and cross-run read commands: ``/stats``, ``/daily``, ``/weekly``,
``/monthly``, ``/performance``, ``/trades`` (pages) and ``/pnl``.

Pure functions of the service's results. Every number carries its unit (the runs' quote
currency, ``%``); times show the year only when it is not this year, and say UTC. Without a
run the reply covers every run and names them.
"""

from __future__ import annotations

import discord

from bot.embeds import BLUE, GREEN, RED, funding_text
from bot.embeds_views import pnl
from engine import formatting as fmt
from engine.service_stats import PeriodView, PnlSummary, Scope, StatsView, TradesPage
from engine.stats import PerformanceRow

PERIOD_NAMES = {"day": ("📅 Daily", "UTC day"), "week": ("🗓️ Weekly", "week of"),
                "month": ("📆 Monthly", "month")}
MAX_LISTED_RUNS = 12


def scope_title(scope: Scope) -> str:
    """``"run 3fa9c1"`` or ``"all runs (3)"``."""
    return f"all runs ({len(scope.runs)})" if scope.all_runs else f"run {scope.runs[0]}"


def scope_line(scope: Scope) -> str:
    """For replies over every run: which runs they cover (empty for one run)."""
    if not scope.all_runs:
        return ""
    shown = ", ".join(f"`{r}`" for r in scope.runs[:MAX_LISTED_RUNS])
    more = f" and {len(scope.runs) - MAX_LISTED_RUNS} more" if \
        len(scope.runs) > MAX_LISTED_RUNS else ""
    return f"Covers every run: {shown}{more}"


def stats(view: StatsView) -> discord.Embed:
    """``/stats``: wins and losses by exit reason and side, durations, best/worst, streaks."""
    s, q = view.stats, view.scope.quote
    embed = discord.Embed(title=f"📈 Stats · {scope_title(view.scope)}",
                          description=scope_line(view.scope) or None,
                          colour=GREEN if s.pnl >= 0 else RED)
    if not s.trades:
        embed.description = ((embed.description or "") + "\nNo closed trades yet.").strip()
        return embed
    embed.add_field(name="Trades", value=f"{s.trades:,} · {s.wins} W / {s.losses} L")
    embed.add_field(name="Win rate", value=fmt.pct(s.win_rate_pct, signed=False))
    embed.add_field(name="Realised", value=fmt.signed_money(s.pnl, q))
    embed.add_field(name="Profit factor", value=fmt.ratio(s.profit_factor))
    embed.add_field(name="Expectancy", value=fmt.signed_money(s.expectancy, q))
    embed.add_field(name="Fees", value=fmt.money(s.fees, q))
    embed.add_field(name="By exit reason", value="\n".join(
        f"{fmt.reason_text(g.key)} · {g.trades} · {g.wins} W / {g.losses} L · "
        f"{fmt.signed_money(g.pnl, q)}" for g in s.by_reason)[:1024], inline=False)
    embed.add_field(name="Long vs short", value="\n".join(
        f"{g.key} · {g.trades} · {fmt.pct(g.win_rate_pct, signed=False, digits=1)} won · "
        f"{fmt.signed_money(g.pnl, q)}" for g in s.by_side)[:1024], inline=False)
    embed.add_field(name="Average hold", value=f"winners {fmt.duration(s.avg_win_duration_ms)}"
                                               f"\nlosers {fmt.duration(s.avg_loss_duration_ms)}")
    if s.best is not None and s.worst is not None:
        embed.add_field(name="Best / worst", value=(
            f"#{s.best.id} {fmt.pct(s.best.pnl_pct)} ({fmt.signed_money(s.best.pnl, q)})\n"
            f"#{s.worst.id} {fmt.pct(s.worst.pnl_pct)} ({fmt.signed_money(s.worst.pnl, q)})"))
    embed.add_field(name="In a row", value=f"{s.max_win_streak} wins max\n"
                                           f"{s.max_loss_streak} losses max")
    return embed


def periods(view: PeriodView) -> discord.Embed:
    """``/daily``, ``/weekly``, ``/monthly``: one line per period, newest first."""
    title, head = PERIOD_NAMES[view.period]
    total = sum(r.pnl for r in view.rows)
    embed = discord.Embed(title=f"{title} · {scope_title(view.scope)}",
                          colour=GREEN if total >= 0 else RED)
    unit = view.scope.quote or "quote"
    lines = [f"{head:<11} {'trades':>6} {'PnL ' + unit:>12} {'%':>6}"]
    for row in view.rows:
        label = fmt.day(row.start) if view.period != "month" else \
            fmt.when(row.start, utc=False)[:3] + " " + fmt.iso(row.start)[:4]
        pnl_text = f"{row.pnl:+,.2f}" if row.trades else "0.00"
        pct_text = f"{row.pct:+.2f}" if row.pct is not None else "—"
        lines.append(f"{label:<11} {row.trades:>6} {pnl_text:>12} {pct_text:>6}")
    body = "```\n" + "\n".join(lines) + "\n```"
    embed.description = "\n".join(x for x in (scope_line(view.scope), body) if x)
    trades = sum(r.trades for r in view.rows)
    embed.set_footer(text=f"{trades} trades · {fmt.signed_money(total, view.scope.quote)} · "
                          "realised PnL of the trades closed in each period; % of the equity "
                          "at its start")
    return embed


def performance(rows: list[PerformanceRow], quote: str = "") -> discord.Embed:
    """``/performance``: realised PnL per strategy and symbol across every run."""
    total = sum(r.pnl for r in rows)
    embed = discord.Embed(title="🏆 Performance · every run", colour=GREEN if total >= 0
                          else RED)
    if not rows:
        embed.description = "No runs yet."
        return embed
    lines = []
    for r in rows[:25]:
        lines.append(f"**{r.strategy}** {r.symbol} · {r.runs} run{'s' * (r.runs != 1)} · "
                     f"{r.trades} trades · {fmt.pct(r.win_rate_pct, signed=False, digits=1)} "
                     f"won\n{fmt.signed_money(r.pnl, quote)} ({fmt.pct(r.pct)} of their "
                     "starting balances)")
    embed.description = "\n".join(lines)[:4000]
    embed.set_footer(text="closed trades only · best first")
    return embed


def trades_page(page: TradesPage) -> discord.Embed:
    """A page of ``/trades``: two lines per trade, newest first."""
    q = page.scope.quote
    embed = discord.Embed(title=f"Trades · {scope_title(page.scope)}", colour=BLUE)
    if not page.items:
        embed.description = "\n".join(x for x in (scope_line(page.scope),
                                                  "No closed trades yet.") if x)
        return embed
    lines = [scope_line(page.scope)] if page.scope.all_runs else []
    for run_id, t in page.items:
        who = f"`{run_id} #{t.id}`" if page.scope.all_runs else f"`#{t.id}`"
        lines.append(f"{who} {t.side.upper()} {t.symbol} · {fmt.when(t.entry_time)} → "
                     f"{fmt.when(t.exit_time)}")
        lines.append(f"{fmt.number(t.entry_price)} → {fmt.number(t.exit_price)} {q} · "
                     f"**{fmt.signed_money(t.pnl, q)}** ({fmt.pct(t.pnl_pct)}) · "
                     f"{fmt.reason_text(t.exit_reason)}")
    embed.description = "\n".join(x for x in lines if x)[:4096]
    embed.set_footer(text=f"page {page.page}/{page.pages} · {page.total:,} trades, "
                          "newest first")
    return embed


def pnl_summary(summary: PnlSummary) -> discord.Embed:
    """``/pnl``: one run's figures, or the sums over every run with one line per run."""
    if not summary.scope.all_runs:
        return pnl(summary.views[0])
    q = summary.scope.quote
    embed = discord.Embed(title=f"PnL · {scope_title(summary.scope)}",
                          description=scope_line(summary.scope),
                          colour=GREEN if summary.return_pct >= 0 else RED)
    embed.add_field(name="Equity", value=fmt.money(summary.equity, q))
    embed.add_field(name="Return", value=fmt.pct(summary.return_pct))
    embed.add_field(name="Realised", value=fmt.signed_money(summary.realised_pnl, q))
    embed.add_field(name="Unrealised", value=fmt.signed_money(summary.unrealised_pnl, q))
    embed.add_field(name="Win rate", value=fmt.pct(summary.win_rate_pct, signed=False))
    embed.add_field(name="Trades", value=f"{summary.trades:,}")
    embed.add_field(name="Fees", value=fmt.money(summary.fees_paid, q))
    if summary.funding or summary.perpetual:
        embed.add_field(name="Funding", value=funding_text(summary.funding, q))
    embed.add_field(name="Start balances", value=fmt.money(summary.starting_balance, q))
    embed.add_field(name="Open positions", value=str(summary.open_positions))
    lines = [f"`{v.run_id}` {v.symbol} · {v.status} · {fmt.money(v.equity, q)} "
             f"({fmt.pct(v.return_pct)}) · {v.trades} trades · {v.open_positions} open"
             for v in summary.views[:15]]
    embed.add_field(name="Runs", value="\n".join(lines)[:1024], inline=False)
    return embed
