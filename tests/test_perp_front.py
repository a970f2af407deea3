"""Perpetuals at the front-ends: leverage from Discord and the command line, the leverage, the
liquidation price and the funding shown where a trader looks (alerts, /forward list,
/positions, /pnl, paperbot runs|positions|pnl|trades), refusals in one line."""

from __future__ import annotations

import asyncio
import json
import textwrap

import numpy as np
import pytest

from bot import embeds_backtest
from engine.cli import forward_cmd
from tests.bot_helpers import CHANNEL, TRADER, VISITOR, bot_env
from tests.forward_helpers import connected_and_idle, until
from tests.helpers import run_cli

#: Long whenever flat, held ``hold`` candles (a time exit): long enough to cross a settlement.
PERP_HOLD = textwrap.dedent('''
    from engine.strategy import Strategy
    from engine.types import Signal

    class PerpHold(Strategy):
        """Long whenever flat with half the equity, closed after ``hold`` candles."""
        timeframes = ["1m"]
        params = {"hold": 12}

        def on_candle(self, data, portfolio):
            if portfolio.positions:
                return None
            return [Signal.open_long(50, max_hold=self.p.hold)]
''')

#: Row of the sample 1m candles (2025-05-20 00:00 onwards) whose candle closes at 08:00 UTC,
#: a funding settlement; the run trades from ``SETTLE - 9`` (07:50).
SETTLE = 479
CURSOR = SETTLE - 9


def fields_of(message) -> dict[str, str]:
    return {f["name"]: f["value"] for f in message.embeds[0]["fields"]}


def titled(env, part: str):
    return [m for m in env.ds.channel_messages(CHANNEL) if not m.deleted and m.embeds
            and part in (m.embeds[0].get("title") or "")]


async def answered(record):
    await record.wait_done(lambda r: r.final is not None and r.final.embeds, timeout=30)
    return record


async def test_a_perpetual_run_from_discord_shows_leverage_liquidation_and_funding(
        tmp_path, capsys):
    async with bot_env(tmp_path, cursor=CURSOR) as env:
        (tmp_path / "strategies" / "perp_hold.py").write_text(PERP_HOLD)
        start = await env.ds.invoke("forward start", {
            "strategy": "perp_hold", "symbol": "BTC/USDT:USDT", "timeframe": "1m",
            "leverage": 5.0}, user_id=TRADER, channel_id=CHANNEL)
        await start.wait_done(lambda r: r.final is not None and "started" in r.final.content,
                              timeout=30)
        run_id = start.final.content.split("`")[1]
        await env.ex.wait_for_subscription("bybit", "tickers.BTCUSDT")
        await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
        started = await env.ds.wait_for_message(
            CHANNEL, lambda m: bool(m.embeds) and "started" in m.embeds[0]["title"], timeout=10)
        listing = await answered(await env.ds.invoke("forward list", user_id=VISITOR))

        live = env.runtime.engine.runs[run_id]
        await connected_and_idle(live)
        entry_candle = await env.ex.emit_candle("BTC/USDT", "1m")
        await until(lambda: bool(live.portfolio.positions), what="the long opened")
        positions = await answered(await env.ds.invoke("positions", user_id=VISITOR))
        opened = await env.ds.wait_for_message(
            CHANNEL, lambda m: bool(m.embeds) and "opened" in m.embeds[0]["title"], timeout=10)
        for _ in range(12):  # held 12 candles: across the 08:00 settlement, then a time exit
            await env.ex.emit_candle("BTC/USDT", "1m")
        closed = await env.ds.wait_for_message(
            CHANNEL, lambda m: bool(m.embeds) and "closed" in m.embeds[0]["title"]
            and "trade #1" in m.embeds[0]["footer"]["text"], timeout=20)
        await until(lambda: len(live.portfolio.positions) == 1, what="the next long")
        pnl = await answered(await env.ds.invoke("pnl", {"run": run_id}, user_id=VISITOR))
        pnl_all = await answered(await env.ds.invoke("pnl", user_id=VISITOR))
        trade = (await env.runtime.service.trades(run_id))[0]
        held = live.portfolio.positions[0]

    # what funding the stand-in settled at 08:00, and what a 0.1 BTC-ish long pays on it
    times, rates = env.ex.rest.derivs.funding_of("BTCUSDT")
    settle_ts = int(env.series.ts[SETTLE]) + 60_000
    rate = float(rates[np.searchsorted(times, settle_ts)])
    assert int(times[np.searchsorted(times, settle_ts)]) == settle_ts and rate != 0.0
    entry = entry_candle.close
    funding = -trade.size * float(env.series.close[SETTLE]) * rate
    word = "paid" if funding < 0 else "received"

    assert f"Run `{run_id}` started: perp_hold on BTC/USDT:USDT 1m · bybit · leverage 5x" \
        in start.final.content and start.ephemeral
    assert fields_of(started)["Leverage"] == \
        "5x · isolated, liquidation at 0.50 % maintenance margin"
    assert listing.final.embeds[0]["fields"][0]["name"] == \
        f"🟢 {run_id} · perp_hold · BTC/USDT:USDT 1m · 5x"
    # Bybit's isolated-margin formula: entry × (1 − 1/5 + 0.5 %)
    liquidation = entry * (1 - 1 / 5 + 0.005)
    assert f"liquidation {liquidation:,.2f} USDT" in \
        positions.final.embeds[0]["fields"][0]["value"]
    assert fields_of(opened)["Liquidation"] == f"{liquidation:,.2f} (-19.50 %)"
    assert (trade.entry_price, trade.exit_reason) == (entry, "time_exit")
    assert trade.funding == pytest.approx(funding, rel=1e-12)
    assert fields_of(closed)["Funding"] == f"{funding:+,.2f} USDT {word}"
    # the trade's PnL includes its funding: price move − fees + funding
    gross = (trade.exit_price - entry) * trade.size
    assert trade.pnl == pytest.approx(gross - trade.fees + funding, rel=1e-9)
    assert fields_of(pnl.final)["Funding"] == f"{funding:+,.2f} USDT {word}"
    assert fields_of(pnl_all.final)["Funding"] == f"{funding:+,.2f} USDT {word}"  # all runs

    # the same run from the command line (its database; the service has stopped)
    db = str(tmp_path / "runs.db")

    async def cli(*args: str) -> tuple[int, str, str]:  # asyncio.run in a thread of its own
        return await asyncio.to_thread(run_cli, capsys, *args)

    code, out, _ = await cli("runs", "--db", db)
    assert code == 0 and out.rstrip().endswith("leverage 5x") and "perp_hold" in out
    code, out, _ = await cli("runs", "--db", db, "--json")
    assert code == 0 and json.loads(out)[0]["leverage"] == 5.0
    code, out, _ = await cli("positions", run_id, "--db", db)
    assert code == 0 and out.count("\n") == 1
    assert f"liquidation {held.liquidation_price:,.2f}" in out
    assert held.liquidation_price == pytest.approx(held.entry_price * 0.805, rel=1e-12)
    code, out, _ = await cli("positions", "--db", db, "--json")
    assert json.loads(out)[0]["liquidation_price"] == held.liquidation_price
    code, out, _ = await cli("pnl", run_id, "--db", db)
    assert code == 0 and f"  Funding        {funding:+,.2f} USDT (negative = paid)" in out
    code, out, _ = await cli("trades", run_id, "--db", db)
    assert code == 0 and f"funding {funding:,.2f}  time_exit" in out


async def test_a_refused_leverage_is_one_ephemeral_line_and_nothing_starts(tmp_path):
    async with bot_env(tmp_path) as env:
        spot = await answered(await env.ds.invoke("forward start", {
            "strategy": "sma_cross", "symbol": "BTC/USDT", "leverage": 3.0}, user_id=TRADER))
        too_high = await answered(await env.ds.invoke("backtest run", {
            "strategy": "sma_cross", "symbol": "BTC/USDT:USDT", "exchange": "bybit",
            "leverage": 150.0}, user_id=TRADER))
        runs = await env.runtime.service.runs()
    for record, line in (
            (spot, "leverage 3 needs a perpetual: BTC/USDT is spot, which trades at leverage 1 "
                   "(use BTC/USDT:USDT for the perpetual)"),
            (too_high, "leverage 150 is above the maximum of 100x for BTC/USDT:USDT on bybit "
                       "(paperbot's table, docs/perpetuals.md)")):
        visible = [m for m in record.messages if not m.deleted]
        assert record.ephemeral and len(visible) == 1 and visible[0].ephemeral
        assert visible[0].embeds[0]["description"] == f"⚠️ {line}"
    assert runs == []


@pytest.mark.parametrize("args,message", [
    (["--strategy", "sma_cross", "--symbol", "BTC/USDT", "--leverage", "3"],
     "error: leverage 3 needs a perpetual: BTC/USDT is spot, which trades at leverage 1 (use "
     "BTC/USDT:USDT for the perpetual)\n"),
    (["--strategy", "sma_cross", "--symbol", "BTC/USDT:USDT", "--leverage", "150"],
     "error: leverage 150 is above the maximum of 100x for BTC/USDT:USDT on bybit (paperbot's "
     "table, docs/perpetuals.md)\n"),
    (["--leverage", "2"], "error: --leverage only apply to a new run: add --strategy NAME "
                          "(without it paperbot forward only resumes stored runs)\n"),
])
def test_forward_leverage_is_checked_before_the_runtime(capsys, monkeypatch, tmp_path, args,
                                                        message):
    async def must_not_serve(*_args):
        raise AssertionError("the runtime was started")

    monkeypatch.setattr(forward_cmd, "_serve", must_not_serve)
    code, out, err = run_cli(capsys, "forward", *args, "--db", str(tmp_path / "runs.db"),
                             "--strategy-dir", str(tmp_path))
    assert (code, out, err) == (2, "", message)
    assert not (tmp_path / "runs.db").exists()


def test_the_backtest_embed_shows_funding_and_leverage_only_when_they_apply():
    data = {"strategy": "oi_divergence", "symbol": "BTC/USDT:USDT", "timeframe": "1h",
            "exchange": "bybit", "start": 1_700_000_000_000, "end": 1_700_360_000_000,
            "candles": 100, "params": {}, "final_equity": 10_100.0, "leverage": 5.0,
            "maintenance_margin_rate": 0.005, "fills": {"taker_fee_bps": 10},
            "metrics": {"total_return_pct": 1.0, "max_drawdown_pct": -2.0, "num_trades": 3,
                        "fees_paid": 6.0, "funding_paid": 1.25}}
    perp = embeds_backtest.backtest(data, [])[0].to_dict()
    spot = embeds_backtest.backtest({**data, "symbol": "BTC/USDT", "leverage": 1.0, "metrics": {
        **data["metrics"], "funding_paid": 0.0}}, [])[0].to_dict()
    assert {f["name"]: f["value"] for f in perp["fields"]}["Funding paid"] == "1.25 USDT"
    assert perp["footer"]["text"].endswith(" · leverage 5x, maintenance margin 0.50 %")
    assert "Funding paid" not in {f["name"] for f in spot["fields"]}
    assert "leverage" not in spot["footer"]["text"]
