"""Embeds of backtests: the reply to ``/backtest run`` and ``/backtest history``.

Built from the ``backtest --json`` object (``BacktestReport.to_json``), so a backtest stored
in the history is posted again exactly as it was first posted. Sharpe and Sortino say their
period ("daily, ann."); CAGR and Calmar are left out for windows under 90 days (the JSON keeps
them, flagged ``short_window``).
"""

from __future__ import annotations

from typing import Any

import discord

from bot.access import mention
from bot.embeds import BLUE, GREEN, RED
from data.symbols import quote_currency
from data.timeframes import timeframe_ms
from engine import formatting as fmt
from engine.store.backtests import StoredBacktest

#: Attachment names of the charts, in the order they are shown.
CHART_NAMES = {"price": "price.png", "equity": "equity.png", "monthly": "monthly.png"}


def period_label(period: str | None) -> str:
    """``"1d"`` → ``"daily, ann."``; another period names itself (``"1w, ann."``)."""
    return "daily, ann." if period in (None, "1d") else f"{period}, ann."


def backtest(data: dict[str, Any], charts: list[str], history_id: int | None = None,
             note: str | None = None) -> list[discord.Embed]:
    """The metrics embed (with the price chart) and one embed per further chart.

    ``charts`` names the attached charts (``"price"``, ``"equity"``, ``"monthly"``).
    """
    m = data["metrics"]
    quote = quote_currency(data["symbol"])
    params = " ".join(f"{k}={v}" for k, v in (data.get("params") or {}).items())
    embed = discord.Embed(
        title=f"{data['strategy']} · {data['symbol']} {data['timeframe']} · {data['exchange']}",
        description=f"{fmt.iso(data['start'])} → {fmt.iso(_last_open(data))} UTC · "
                    f"{data['candles']:,} candles\n`{params or 'no params'}`",
        colour=GREEN if m["total_return_pct"] >= 0 else RED)
    period = period_label(m.get("returns_period"))
    fields = [
        ("Return", fmt.pct(m["total_return_pct"])),
        ("Max drawdown", fmt.pct(m["max_drawdown_pct"])),
        (f"Sharpe ({period})", fmt.ratio(m.get("sharpe"))),
        (f"Sortino ({period})", fmt.ratio(m.get("sortino"))),
    ]
    if not m.get("short_window", False):
        fields += [("CAGR", fmt.pct(m.get("cagr_pct") if m.get("cagr_pct") != "inf" else None)),
                   ("Calmar", fmt.ratio(m.get("calmar")))]
    fields += [
        ("Win rate", fmt.pct(m.get("win_rate_pct"), signed=False)),
        ("Profit factor", fmt.ratio(m.get("profit_factor"))),
        ("Trades", f"{m['num_trades']:,}"),
        ("Fees", fmt.money(m["fees_paid"], quote)),
        *([("Funding paid", fmt.money(m["funding_paid"], quote))]
          if m.get("funding_paid") else []),
        ("Final equity", fmt.money(data["final_equity"], quote)),
        ("Buy & hold", fmt.pct(m.get("buy_and_hold_return_pct"))),
    ]
    for name, value in fields:
        embed.add_field(name=name, value=value, inline=True)
    reasons = data.get("exit_reasons") or {}
    if reasons:
        embed.add_field(name="Exits by reason", value="\n".join(
            f"{fmt.reason_text(k)} · {v['trades']} · {v['wins']} W / {v['losses']} L · "
            f"{fmt.signed_money(v['pnl'], quote)}" for k, v in reasons.items())[:1024],
            inline=False)
    blocks = data.get("guard_blocks") or {}
    if blocks:
        embed.add_field(name="Guard blocks", value=" · ".join(
            f"{name} {count:,}" for name, count in blocks.items())[:1024], inline=False)
    drill = data.get("drill_down") or {}
    embed.add_field(name="SL/TP in one candle",
                    value=f"{drill.get('resolved', 0)} drill-down · "
                          f"{drill.get('conservative', 0)} conservative", inline=False)
    notes = list(data.get("warnings") or [])
    if m.get("short_window"):
        notes.append(f"{m.get('span_days', 0):.0f} days: too short to annualise, so no CAGR "
                     "or Calmar")
    if note:
        notes.append(note)
    if notes:
        embed.add_field(name="Note", value="\n".join(notes)[:1000], inline=False)
    fills = data.get("fills") or {}
    source = str(data.get("data_source") or "").split(" (")[0]
    footer = (f"fees {fills.get('taker_fee_bps', 0):g}/{fills.get('maker_fee_bps', 0):g} bp · "
              f"slippage {fills.get('slippage_bps', 0):g} bp · {source}")
    if (data.get("leverage") or 1.0) > 1.0:
        footer += (f" · leverage {fmt.leverage(data['leverage'])}, maintenance margin "
                   f"{fmt.pct(data.get('maintenance_margin_rate', 0.0) * 100.0, signed=False)}")
    if history_id is not None:
        footer += f" · backtest #{history_id}"
    embed.set_footer(text=footer)
    embeds = [embed]
    for k, name in CHART_NAMES.items():
        if k not in charts:
            continue
        target = embed if k == "price" else discord.Embed(colour=embed.colour)
        target.set_image(url=f"attachment://{name}")
        if target is not embed:
            embeds.append(target)
    return embeds


def _last_open(data: dict[str, Any]) -> int:
    """Open time of the last traded candle (``end`` is the last close)."""
    return int(data["end"]) - timeframe_ms(data["timeframe"])


def history(items: list[StoredBacktest], total: int) -> discord.Embed:
    """``/backtest history``: the newest stored backtests, one line each."""
    embed = discord.Embed(title="🗂️ Backtest history", colour=BLUE)
    if not items:
        embed.description = "No backtests stored yet. Run one with /backtest run."
        return embed
    lines = []
    for b in items:
        m = b.result.get("metrics", {})
        span = f"{fmt.iso(b.result.get('start'))[:10]} → {fmt.iso(_last_open(b.result))[:10]}"
        who = mention(b.actor) or b.actor
        lines.append(f"`#{b.id}` **{b.strategy}** {b.symbol} {b.timeframe} · {span}\n"
                     f"{fmt.pct(m.get('total_return_pct'))} · {m.get('num_trades', 0)} trades · "
                     f"{who} · {fmt.when(b.created_at)}")
    embed.description = "\n".join(lines)[:4000]
    embed.set_footer(text=f"{len(items)} of {total} · pick one below to post it again, or "
                          "/backtest history id:N")
    return embed
