"""Embeds: pure functions from service results and engine events to ``discord.Embed``.

Written for phones: short titles, a few inline fields, numbers with thousands separators and
units (quote currency for money and prices, base units for sizes).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import discord

from bot.access import mention
from data.symbols import base_currency, quote_currency
from engine import formatting as fmt
from engine.events import (
    CaughtUp,
    DailySummary,
    EngineError,
    Event,
    FeedLost,
    FeedRestored,
    GuardLifted,
    GuardTripped,
    PositionReduced,
    PositionUpdated,
    RunPaused,
    RunStarted,
    RunStopped,
    SignalRejected,
    StorageRestored,
    StorageUnavailable,
    TradeClosed,
    TradeOpened,
)
from engine.store.store import RunRecord
from engine.types import Position, Trade

GREEN = discord.Colour.from_rgb(38, 166, 91)
RED = discord.Colour.from_rgb(214, 69, 65)
GREY = discord.Colour.light_grey()
BLUE = discord.Colour.blurple()
ORANGE = discord.Colour.orange()

REASONS = {"stop_loss": "stop-loss", "take_profit": "take-profit", "signal": "signal",
           "end_of_data": "end of data", "manual": "manual close",
           "trailing_stop": "trailing stop", "time_exit": "time exit",
           "max_drawdown": "max drawdown", "liquidation": "liquidation"}
#: a short opened: neither the loss red nor the long blue
PURPLE = discord.Colour.from_rgb(155, 89, 182)


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def size_text(size: float, symbol: str) -> str:
    """``0.0123 BTC``: a size in base units of ``symbol``."""
    return f"{size:,.6g} {base_currency(symbol)}"


# ---- alerts -------------------------------------------------------------------------------------
def _distance(level: float, entry: float) -> str:
    """A level with its distance from the entry: ``"102,038.09 (-2.00 %)"``."""
    if level is None or math.isnan(level) or not entry:
        return "—"
    return f"{fmt.number(level)} ({fmt.pct((level / entry - 1.0) * 100.0)})"


def stop_risk(position: Position, run: RunRecord | None) -> float | None:
    """Loss (quote) if ``position`` leaves at its stop: the stop fill worsened by the run's
    slippage, plus the taker fee on it (the entry fee is already paid). None without a stop."""
    stop = position.stop_loss
    if stop is None or math.isnan(stop):
        return None
    slip = (run.slippage_bps if run else 0.0) / 10_000
    fee = (run.fee_bps if run else 0.0) / 10_000
    fill = stop * (1.0 - position.direction * slip)
    return (position.entry_price - fill) * position.direction * position.size + \
        fill * position.size * fee


def trade_opened(event: TradeOpened, run: RunRecord | None, equity: float | None = None,
                 chart: bool = False) -> discord.Embed:
    """A position opened: levels with their distance, the risk to the stop, the run's equity.

    Blue for a long, purple for a short (an opened short is not a loss). ``equity`` is the
    run's equity after the entry (quote currency).
    """
    p = event.position
    long = p.side == "long"
    quote = quote_currency(p.symbol)
    embed = discord.Embed(
        title=f"{'🔼 LONG' if long else '🔽 SHORT'} opened · {p.symbol}",
        colour=BLUE if long else PURPLE, timestamp=_when(p.entry_time))
    embed.add_field(name="Entry", value=fmt.money(p.entry_price, quote))
    embed.add_field(name="Size", value=size_text(p.size, p.symbol))
    embed.add_field(name="Notional", value=fmt.money(p.notional, quote))
    embed.add_field(name="Stop-loss", value=_distance(p.stop_loss, p.entry_price))
    embed.add_field(name="Take-profit", value=_distance(p.take_profit, p.entry_price))
    if p.liquidation_price == p.liquidation_price:  # leveraged: isolated-margin liquidation
        embed.add_field(name="Liquidation", value=_distance(p.liquidation_price, p.entry_price))
    risk = stop_risk(p, run)
    share = f" ({fmt.pct(risk / equity * 100.0, signed=False)} of equity)" \
        if risk is not None and equity else ""
    embed.add_field(name="Risk to stop", value=fmt.money(risk, quote) + share
                    if risk is not None else "no stop")
    embed.add_field(name="Run equity", value=fmt.money(equity, quote))
    embed.add_field(name="Fee", value=fmt.money(p.entry_fee, quote))
    if p.tag:
        embed.add_field(name="Signal", value=p.tag[:1024])
    embed.set_footer(text=_run_line(event.run_id, run, f"position #{p.id}"))
    if chart:
        embed.set_image(url="attachment://opened.png")
    return embed


def trade_closed(event: TradeClosed, run: RunRecord | None, chart: bool,
                 realised: float | None = None) -> discord.Embed:
    """Green for a profit, red for a loss; ``realised`` is the run's cumulative realised PnL
    after this trade (quote currency); the trade chart as image when attached."""
    t = event.trade
    win = t.pnl >= 0
    quote = quote_currency(t.symbol)
    embed = discord.Embed(
        title=f"{'✅' if win else '❌'} {t.side.upper()} closed · {t.symbol} · "
              f"{fmt.signed_money(t.pnl, quote)} ({fmt.pct(t.pnl_pct)})",
        colour=GREEN if win else RED, timestamp=_when(t.exit_time))
    embed.add_field(name="Entry", value=fmt.money(t.entry_price, quote))
    embed.add_field(name="Exit", value=fmt.money(t.exit_price, quote))
    embed.add_field(name="Size", value=size_text(t.size, t.symbol))
    embed.add_field(name="PnL", value=f"{fmt.signed_money(t.pnl, quote)}\n{fmt.pct(t.pnl_pct)}")
    embed.add_field(name="Exit reason", value=fmt.reason_text(t.exit_reason))
    embed.add_field(name="Duration", value=fmt.duration(t.duration_ms))
    levels = f"{fmt.number(t.stop_loss)} / {fmt.number(t.take_profit)} {quote}"
    embed.add_field(name="SL / TP", value=levels.rstrip())
    embed.add_field(name="Fees", value=fmt.money(t.fees, quote))
    if t.on_perpetual:  # funding booked while held, already in the PnL
        embed.add_field(name="Funding", value=funding_text(t.funding, quote))
    embed.add_field(name="Run realised", value=fmt.signed_money(realised, quote))
    note = " · settled on recovery (the exit happened while paperbot was down)" \
        if t.settled_on_recovery else ""
    embed.set_footer(text=_run_line(event.run_id, run, f"trade #{t.id}") + note)
    if chart:
        embed.set_image(url="attachment://trade.png")
    return embed


def funding_text(amount: float, quote: str) -> str:
    """Funding booked (quote, signed: negative = paid): ``"-1.20 USDT paid"``,
    ``"+0.80 USDT received"``, ``"0.00 USDT"``."""
    if not amount:
        return fmt.money(0.0, quote)
    return f"{fmt.signed_money(amount, quote)} {'paid' if amount < 0 else 'received'}"


def leverage_text(leverage: float, maintenance_margin_rate: float = 0.0) -> str:
    """``"5x · isolated, liquidation at 0.50 % maintenance margin"``; ``"1x"`` unleveraged."""
    if leverage <= 1.0:
        return fmt.leverage(1.0)
    return (f"{fmt.leverage(leverage)} · isolated, liquidation at "
            f"{fmt.pct(maintenance_margin_rate * 100.0, signed=False)} maintenance margin")


def _run_line(run_id: str, run: RunRecord | None, extra: str) -> str:
    if run is None:
        return f"run {run_id} · {extra}"
    return f"run {run_id} · {run.strategy} {run.timeframe} · {extra}"


def lifecycle(event: Event, run: RunRecord | None) -> discord.Embed:
    """Run started/stopped, feed lost/restored, errors, rejected signals, daily summaries."""
    if isinstance(event, RunStarted):
        embed = discord.Embed(
            title=f"▶️ Run {event.run_id} {'resumed' if event.resumed else 'started'}",
            description=f"{event.strategy} on {event.symbol} {event.timeframe} · {event.exchange}",
            colour=BLUE)
        embed.add_field(name="Balance",
                        value=fmt.money(event.balance, quote_currency(event.symbol)))
        if run is not None and (run.leverage > 1.0 or ":" in run.symbol):
            embed.add_field(name="Leverage", value=leverage_text(
                run.leverage, run.maintenance_margin_rate))
        if run is not None and run.params:
            embed.add_field(name="Params", value="`" + " ".join(
                f"{k}={v}" for k, v in run.params.items()) + "`", inline=False)
    elif isinstance(event, RunStopped):
        why = {"user": "stopped", "shutdown": "paused for a restart", "error": "failed"}
        embed = discord.Embed(title=f"⏹️ Run {event.run_id} {why.get(event.reason, 'stopped')}",
                              colour=GREY if event.reason != "error" else RED)
        quote = quote_currency(run.symbol) if run is not None else ""
        embed.add_field(name="Equity", value=fmt.money(event.equity, quote))
        if run is not None:
            embed.description = f"{run.strategy} on {run.symbol} {run.timeframe} · {run.exchange}"
            embed.add_field(name="Return", value=fmt.pct(
                (event.equity / run.starting_balance - 1.0) * 100.0))
    elif isinstance(event, FeedLost):
        embed = discord.Embed(title=f"⚠️ Feed lost · {event.exchange}",
                              description=event.detail, colour=ORANGE)
    elif isinstance(event, FeedRestored):
        embed = discord.Embed(title=f"🔌 Feed restored · {event.exchange}",
                              description=f"{event.backfilled} missed candles backfilled",
                              colour=BLUE)
    elif isinstance(event, EngineError):
        embed = discord.Embed(title=f"🛑 {'Run failed' if event.fatal else 'Error'}",
                              description=event.message[:2000], colour=RED)
    elif isinstance(event, SignalRejected):
        embed = discord.Embed(title=f"🚫 Signal {event.action} rejected",
                              description=event.reason, colour=ORANGE)
    elif isinstance(event, DailySummary):
        embed = daily_summary(event, quote_currency(run.symbol) if run is not None else "")
    elif isinstance(event, CaughtUp):
        embed = caught_up(event, run)
    elif isinstance(event, RunPaused):
        by = mention(event.by)
        who = "" if event.by == "engine" else f" by {by}" if by else f" ({event.by})"
        embed = discord.Embed(
            title=f"⏸️ Run {event.run_id} paused{who}",
            description=(f"{event.reason[:1500]}\nOpen positions keep their stops, targets and "
                         "trailing levels; no new entries until /forward resume."),
            colour=RED if event.error else ORANGE)
    elif isinstance(event, PositionUpdated):
        embed = position_updated(event)
    elif isinstance(event, PositionReduced):
        embed = position_reduced(event)
    elif isinstance(event, GuardTripped):
        embed = guard_tripped(event)
    elif isinstance(event, GuardLifted):
        embed = guard_lifted(event)
    elif isinstance(event, StorageUnavailable):
        embed = discord.Embed(
            title="💾 Storage unavailable",
            description=f"The run database cannot take writes since {fmt.iso(event.since)} UTC "
                        f"({event.detail[:300]}). Runs are holding their candles and carry on "
                        "where they stopped once writes succeed; nothing is skipped.",
            colour=RED)
        embed.set_footer(text="every run")
    elif isinstance(event, StorageRestored):
        embed = discord.Embed(
            title="💾 Storage back",
            description=f"Writes succeed again after {fmt.duration(event.down_ms)}; runs "
                        "carried on where they stopped.", colour=BLUE)
        embed.set_footer(text="every run")
    else:
        embed = discord.Embed(title=type(event).__name__, colour=GREY)
    embed.timestamp = _when(event.ts)
    if not embed.footer.text:
        embed.set_footer(text=_run_line(event.run_id, run, "alert"))
    return embed


def guard_tripped(event: GuardTripped) -> discord.Embed:
    """"⛔ cooldown: no entries until 2025-05-20 17:00 UTC" with the guard's reason."""
    until = f"no entries until {fmt.iso(event.until)} UTC" if event.until is not None \
        else "no entries for now"
    return discord.Embed(title=f"⛔ {event.guard}: {until}"[:256],
                         description=f"{event.reason[:1500]}\nOpen positions are still "
                                     "managed; one alert when entries are allowed again.",
                         colour=ORANGE)


def guard_lifted(event: GuardLifted) -> discord.Embed:
    """"✅ cooldown lifted: entries allowed again"."""
    return discord.Embed(title=f"✅ {event.guard} lifted: entries allowed again", colour=BLUE)


def position_updated(event: PositionUpdated) -> discord.Embed:
    """"🔧 Stop moved to 104,120.50 (break-even) · BTC/USDT long #15"."""
    parts = []
    if event.note == "break-even" or event.stop_loss == event.entry_price:
        parts.append(f"Stop moved to {fmt.number(event.stop_loss)} (break-even)")
    else:
        parts.append(f"Stop {fmt.number(event.stop_loss)}")
    parts.append(f"target {fmt.number(event.take_profit)}")
    who = "by you" if event.by == "user" else "by the strategy"
    embed = discord.Embed(
        title=f"🔧 {', '.join(parts)} · {event.symbol} {event.side} #{event.position_id}"[:256],
        description=f"Moved {who}; in force from the next candle"
                    + (f" · trailing stop {fmt.number(event.trailing_stop)}"
                       if event.trailing_stop == event.trailing_stop else ""),
        colour=BLUE)
    return embed


def position_reduced(event: PositionReduced) -> discord.Embed:
    """"✂️ Took 33 % at 106,200.00 · +68.10 USDT · 0.061 BTC left"."""
    e = event.exit
    quote = quote_currency(event.symbol)
    share = e.size / event.initial_size * 100.0 if event.initial_size else 0.0
    pnl = f"{'+' if e.pnl >= 0 else ''}{fmt.money(e.pnl, quote)}"
    embed = discord.Embed(
        title=f"✂️ Took {share:.0f} % at {fmt.number(e.price)} · {pnl} · "
              f"{size_text(event.remaining, event.symbol)} left",
        description=f"{event.symbol} {event.side} #{e.position_id} · "
                    f"{REASONS.get(e.reason, e.reason.replace('_', ' '))} · fee "
                    f"{fmt.money(e.fee, quote)}",
        colour=GREEN if e.pnl >= 0 else RED, timestamp=_when(e.time))
    return embed


def trade_line(t: Trade) -> str:
    """One closed trade on one line: id, side, entry → exit, PnL (quote) and exit reason."""
    quote = quote_currency(t.symbol)
    return (f"`#{t.id}` {t.side.upper()} {fmt.number(t.entry_price)} → "
            f"{fmt.number(t.exit_price)} {fmt.reason_text(t.exit_reason)} · "
            f"**{fmt.signed_money(t.pnl, quote)}** · {fmt.when(t.exit_time)}")


def trade_lines(trades: list[Trade], limit: int = 10) -> str:
    """``trade_line`` for the first ``limit`` trades, then "… and N more"."""
    lines = [trade_line(t) for t in trades[:limit]]
    if len(trades) > limit:
        lines.append(f"… and {len(trades) - limit} more (`/trades`)")
    return "\n".join(lines)


def caught_up(event: CaughtUp, run: RunRecord | None) -> discord.Embed:
    """One alert for what a run settled while catching up after paperbot was down."""
    closed, opened = list(event.closed), list(event.opened)
    parts = [f"{len(closed)} trade{'s' * (len(closed) != 1)} settled"]
    if opened:
        parts.append(f"{len(opened)} opened")
    if event.rejected:
        parts.append(f"{event.rejected} signals rejected")
    total = sum(t.pnl for t in closed)
    quote = quote_currency(closed[0].symbol if closed else run.symbol if run else "")
    embed = discord.Embed(
        title=f"🔁 While down {fmt.duration(event.away_ms)}: " + ", ".join(parts),
        description=(f"{event.candles:,} missed candles processed; each exit settled at the "
                     "candle where it happened.\n" + trade_lines(closed)).strip(),
        colour=GREEN if total >= 0 else RED)
    if closed:
        embed.add_field(name="Realised", value=fmt.signed_money(total, quote))
    for p in opened[:5]:
        embed.add_field(name=f"Open #{p.id} {p.side.upper()}",
                        value=f"{fmt.money(p.entry_price, quote)} · SL {fmt.number(p.stop_loss)} · "
                              f"TP {fmt.number(p.take_profit)}")
    embed.set_footer(text=_run_line(event.run_id, run, "caught up"))
    return embed


def alert_backlog(run_id: str, run: RunRecord | None, events: list[Event],
                  away_ms: int) -> discord.Embed:
    """One summary of alerts that could not be delivered in time (Discord was unreachable)."""
    closed = [e.trade for e in events if isinstance(e, TradeClosed)]
    for e in events:
        if isinstance(e, CaughtUp):
            closed += list(e.closed)
    opened = sum(1 for e in events if isinstance(e, TradeOpened))
    other = len(events) - sum(1 for e in events if isinstance(e, TradeClosed | TradeOpened))
    parts = [f"{len(closed)} trade{'s' * (len(closed) != 1)} closed"]
    if opened:
        parts.append(f"{opened} opened")
    if other:
        parts.append(f"{other} other alert{'s' * (other != 1)}")
    total = sum(t.pnl for t in closed)
    if run is not None:
        closed = [t if t.symbol else _with_symbol(t, run.symbol) for t in closed]
    embed = discord.Embed(
        title=f"📬 While alerts were down {fmt.duration(away_ms)}: " + ", ".join(parts),
        description=trade_lines(closed) or "No trades closed.",
        colour=GREEN if total >= 0 else RED)
    if closed:
        quote = quote_currency(closed[0].symbol)
        embed.add_field(name="Realised", value=fmt.money(total, quote))
    errors = [e for e in events if isinstance(e, EngineError)]
    if errors:
        embed.add_field(name="Errors", value="\n".join(e.message[:150] for e in errors[:3]),
                        inline=False)
    embed.set_footer(text=_run_line(run_id, run, "summary instead of stale alerts"))
    return embed


def _with_symbol(trade: Trade, symbol: str) -> Trade:
    from dataclasses import replace

    return replace(trade, symbol=symbol)


def daily_summary(event: DailySummary, quote: str = "") -> discord.Embed:
    """Once a day per run (money in the run's quote currency)."""
    embed = discord.Embed(title=f"📊 Daily summary · run {event.run_id}", colour=BLUE)
    embed.add_field(name="Equity", value=fmt.money(event.equity, quote))
    embed.add_field(name="Realised PnL", value=fmt.signed_money(event.realised_pnl, quote))
    embed.add_field(name="Unrealised PnL", value=fmt.signed_money(event.unrealised_pnl, quote))
    embed.add_field(name="Open positions", value=str(event.open_positions))
    embed.add_field(name="Trades (24 h)", value=str(event.trades_today))
    return embed


# ---- read commands ------------------------------------------------------------------------------
