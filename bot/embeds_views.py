"""Embeds answering the reading and managing commands: /positions, /pnl, /forward list,
/strategies, /audit, and the replies of /close, /panic and the level commands.

Pure functions from service results to ``discord.Embed``, written for phones like
``bot.embeds`` (the alert embeds), whose colours they share.
"""

from __future__ import annotations

import discord

from bot.access import mention
from bot.embeds import (
    BLUE,
    GREEN,
    GREY,
    RED,
    funding_text,
    size_text,
    trade_line,
    trade_lines,
)
from data.symbols import quote_currency
from engine import formatting as fmt
from engine.forward.lifecycle import PanicReport
from engine.registry import StrategyInfo
from engine.store.control import AuditRow
from engine.types import Trade
from engine.views import PnlView, PositionView, RunView


def level_reply(view: PositionView, what: str) -> discord.Embed:
    """Reply to ``/position stop|target`` and the break-even button."""
    return discord.Embed(
        title=f"🔧 {what} · {view.symbol} {view.side} #{view.id}",
        description=f"stop-loss {fmt.number(view.stop_loss)} · take-profit "
                    f"{fmt.number(view.take_profit)} · in force from the next candle",
        colour=BLUE)


def positions(views: list[PositionView]) -> discord.Embed:
    """``/positions``: one block per open position."""
    embed = discord.Embed(title="Open positions", colour=BLUE)
    if not views:
        embed.description = "No open positions."
    for v in views[:25]:
        quote = quote_currency(v.symbol)
        pnl = "—" if v.unrealised_pnl is None else \
            f"{fmt.money(v.unrealised_pnl, quote)} ({fmt.pct(v.unrealised_pct)})"
        perp = ""
        if v.liquidation_price is not None:
            perp += f"\nliquidation {fmt.number(v.liquidation_price)} {quote}"
        if v.funding:
            perp += ("\n" if not perp else " · ") + f"funding {funding_text(v.funding, quote)}"
        embed.add_field(
            name=f"{v.run_id} #{v.id} · {v.side.upper()} {v.symbol}",
            value=(f"size {size_text(v.size, v.symbol)} · entry {fmt.number(v.entry_price)} "
                   f"{quote}\nmark {fmt.number(v.mark_price)} {quote} · uPnL {pnl}\n"
                   f"SL {fmt.number(v.stop_loss)} · TP {fmt.number(v.take_profit)} {quote} · since "
                   f"{fmt.when(v.entry_time)}{perp}"),
            inline=False)
    return embed


def pnl(view: PnlView) -> discord.Embed:
    """``/pnl``: money in the run's quote currency."""
    quote = quote_currency(view.symbol)
    embed = discord.Embed(title=f"PnL · run {view.run_id} · {view.symbol}",
                          colour=GREEN if view.return_pct >= 0 else RED)
    embed.add_field(name="Equity", value=fmt.money(view.equity, quote))
    embed.add_field(name="Return", value=fmt.pct(view.return_pct))
    embed.add_field(name="Max drawdown", value=fmt.pct(view.max_drawdown_pct))
    embed.add_field(name="Realised", value=fmt.money(view.realised_pnl, quote))
    embed.add_field(name="Unrealised", value=fmt.money(view.unrealised_pnl, quote))
    embed.add_field(name="Win rate", value=fmt.pct(view.win_rate_pct, signed=False))
    embed.add_field(name="Trades", value=str(view.trades))
    embed.add_field(name="Fees", value=fmt.money(view.fees_paid, quote))
    if view.funding or view.perpetual:  # in Realised (closed) and the balance (open)
        embed.add_field(name="Funding", value=funding_text(view.funding, quote))
    embed.add_field(name="Start balance", value=fmt.money(view.starting_balance, quote))
    return embed


def runs(views: list[RunView], title: str = "Forward runs") -> discord.Embed:
    """``/forward list`` (and the reply to ``/forward stop|pause|resume``)."""
    embed = discord.Embed(title=title, colour=BLUE)
    if not views:
        embed.description = "No runs yet. Start one with /forward start."
    for v in views[:25]:
        icon = {"running": "🟢", "stopped": "⏹️", "failed": "🛑", "paused": "⏸️",
                "waiting for data": "⏳"}.get(v.state, "•")
        detail = f" ({v.state_detail})" if v.state_detail else ""
        lines = [f"{v.state}{detail} · equity {fmt.money(v.equity, quote_currency(v.symbol))} "
                 f"({fmt.pct(v.return_pct)}) · {v.open_positions} open · {v.trades} trades"]
        if v.protections:
            lines.append(f"🛡️ {protections_text(v.protections)}")
        lines += [f"⛔ {reason}" for reason in v.locks]
        leverage = f" · {fmt.leverage(v.leverage)}" if v.shows_leverage else ""
        embed.add_field(name=f"{icon} {v.id} · {v.strategy} · {v.symbol} {v.timeframe}{leverage}",
                        value="\n".join(lines)[:1024], inline=False)
    return embed


def protections_text(protections: dict) -> str:
    """``{"cooldown": 5, "daily_loss_limit_pct": 3.0}`` →
    ``"cooldown=5 daily_loss_limit_pct=3"``."""
    from engine.risk.config import Protections

    return Protections.from_dict(protections).text()


def strategies(infos: list[StrategyInfo]) -> discord.Embed:
    """``/strategies``."""
    embed = discord.Embed(title="Strategies", colour=BLUE)
    for info in infos[:25]:
        params = " ".join(f"{k}={v}" for k, v in info.params.items())
        embed.add_field(name=f"{info.name} · {', '.join(info.timeframes)}",
                        value=f"{info.description or '—'}\n`{params or 'no params'}`",
                        inline=False)
    return embed


def closed_list(trades: list[Trade], title: str) -> discord.Embed:
    """Trades just closed (``/close all``), one line each, with the total."""
    total = sum(t.pnl for t in trades)
    quote = quote_currency(trades[0].symbol) if trades else ""
    embed = discord.Embed(title=title, colour=GREEN if total >= 0 else RED,
                          description=trade_lines(trades, 20) or "Nothing was open.")
    embed.add_field(name="Realised", value=fmt.money(total, quote))
    return embed


def panic_report(report: PanicReport) -> discord.Embed:
    """What the kill switch did."""
    lines = [f"`{rid}` " + trade_line(t) for rid, t in report.closed[:20]]
    if len(report.closed) > 20:
        lines.append(f"… and {len(report.closed) - 20} more")
    embed = discord.Embed(
        title=f"🛑 Kill switch · {len(report.paused)} runs paused · {len(report.closed)} "
              "positions closed",
        description="\n".join(lines) or "No position was open.",
        colour=GREEN if report.realised_pnl >= 0 else RED)
    quote = quote_currency(report.closed[0][1].symbol) if report.closed else ""
    embed.add_field(name="Realised", value=fmt.money(report.realised_pnl, quote))
    if report.failed:
        embed.add_field(name="Could not close", value="\n".join(
            f"`{rid}` {why[:150]}" for rid, why in list(report.failed.items())[:5]),
            inline=False)
    embed.set_footer(text="/forward resume <run> takes entries again")
    return embed


def audit(rows: list[AuditRow], run_id: str | None) -> discord.Embed:
    """``/audit``: who did what, newest first."""
    embed = discord.Embed(title=f"Audit · {f'run {run_id}' if run_id else 'every run'}",
                          colour=GREY)
    lines = []
    for r in rows:
        who = mention(r.actor) or r.actor
        detail = ", ".join(f"{k}={v}" for k, v in r.detail.items() if v not in (None, ""))
        lines.append(f"{fmt.iso(r.ts)} · {who} · **{r.action}**"
                     + (f" · `{r.run_id}`" if r.run_id and not run_id else "")
                     + (f" · {detail[:120]}" if detail else ""))
    text = "\n".join(lines) or "Nothing recorded."
    while len(text) > 4000:
        lines.pop()
        text = "\n".join(lines)
    embed.description = text
    embed.set_footer(text="UTC · newest first")
    return embed


def closed_reply(trade: Trade) -> discord.Embed:
    """Reply after a manual ``/close``."""
    quote = quote_currency(trade.symbol)
    return discord.Embed(
        title=f"Closed #{trade.id} {trade.side.upper()} {trade.symbol}",
        description=f"exit {fmt.money(trade.exit_price, quote)} · PnL "
                    f"{fmt.signed_money(trade.pnl, quote)} "
                    f"({fmt.pct(trade.pnl_pct)})",
        colour=GREEN if trade.pnl >= 0 else RED)
