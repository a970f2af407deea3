"""/forward, /positions, /trades, /pnl, /close and trade alerts, end to end."""

from __future__ import annotations

import asyncio
import io

import matplotlib.image as mpimg
import pytest

from tests.bot_helpers import CHANNEL, ROLE_TRADER, TRADER, VISITOR, bot_env
from tests.bot_helpers import start_run as start
from tests.forward_helpers import until

LONG = "stop_pct=1 take_pct=0.5"
PNG = b"\x89PNG\r\n\x1a\n"


async def start_run(env, strategy="always_long", params=LONG, user=TRADER):
    return await start(env, strategy, params, user)


def fields_of(message) -> dict[str, str]:
    return {f["name"]: f["value"] for f in message.embeds[0]["fields"]}


def expected_exit(candle, stop: float, take: float) -> tuple[str, float] | None:
    """Which level a long's candle hits and the fill (DESIGN §4: both → the stop; opening
    beyond a level fills at the open)."""
    if candle.low <= stop:
        return "stop_loss", min(candle.open, stop)
    if candle.high >= take:
        return "take_profit", max(candle.open, take)
    return None


async def test_trade_alerts_carry_exact_figures_charts_and_disabled_buttons(tmp_path):
    """A replay of real candles: every number of both alerts recomputed from the candles
    (fee 10 bp, no slippage, 50 % of equity per position), over two trades."""
    async with bot_env(tmp_path) as env:
        _, run_id = await start_run(env)
        started = await env.ds.wait_for_message(
            CHANNEL, lambda m: bool(m.embeds) and "started" in m.embeds[0]["title"], timeout=10)
        balance, realised, trades = 10_000.0, 0.0, []
        candle = await env.ex.emit_candle("BTC/USDT", "1m")
        for k in (1, 2):  # always_long re-enters at the close of the candle that exited
            entry = candle.close
            size = balance * 0.5 / entry
            stop, take = entry * 0.99, entry * 1.005
            opened = await env.ds.wait_for_message(
                CHANNEL, lambda m, n=k: bool(m.embeds) and "opened" in m.embeds[0]["title"]
                and f"pb:close:{run_id}:{n}" in m.custom_ids, timeout=10)
            for _ in range(1000):
                candle = await env.ex.emit_candle("BTC/USDT", "1m")
                hit = expected_exit(candle, stop, take)
                if hit:
                    break
            reason, fill = hit
            pnl = (fill - entry) * size - entry * size * 0.001 - fill * size * 0.001
            closed = await env.ds.wait_for_message(
                CHANNEL, lambda m, n=k: bool(m.embeds) and "closed" in m.embeds[0]["title"]
                and f"trade #{n}" in m.embeds[0]["footer"]["text"], timeout=15)
            await env.ds.wait_until(lambda o=opened: o.edited_at is not None, timeout=10,
                                    what="the opened alert's buttons disabled")
            equity_open = balance - entry * size * 0.001
            trades.append((entry, size, stop, take, reason, fill, pnl, equity_open, opened,
                           closed))
            realised += pnl
            balance += pnl
            trades[-1] += (realised,)

    embed = started.embeds[0]
    assert embed["title"] == f"▶️ Run {run_id} started"
    assert [m for m in env.ds.channel_messages(CHANNEL) if m.embeds and "started" in
            m.embeds[0]["title"]] == [started]  # one message per start
    for k, (entry, size, stop, take, reason, fill, pnl, equity, opened, closed,
            total) in enumerate(trades, 1):
        o = fields_of(opened)
        assert opened.embeds[0]["title"] == "🔼 LONG opened · BTC/USDT"
        assert opened.embeds[0]["color"] == 0x5865F2  # blurple: an opened trade is no win
        assert o["Entry"] == f"{entry:,.2f} USDT"
        assert o["Size"] == f"{size:,.6g} BTC"
        assert o["Notional"] == f"{entry * size:,.2f} USDT"
        assert o["Stop-loss"] == f"{stop:,.2f} (-1.00 %)"
        assert o["Take-profit"] == f"{take:,.2f} (+0.50 %)"
        risk = (entry - stop) * size + stop * size * 0.001
        assert o["Risk to stop"] == f"{risk:,.2f} USDT ({risk / equity * 100:,.2f} % of equity)"
        assert o["Run equity"] == f"{equity:,.2f} USDT"
        assert o["Fee"] == f"{entry * size * 0.001:,.2f} USDT"
        assert opened.attachment("opened.png").data[:8] == PNG
        assert opened.embeds[0]["image"]["url"] == "attachment://opened.png"
        # closed: the buttons of the opened alert are disabled, saying how it ended
        buttons = [c for row in opened.components for c in row["components"]]
        assert [b["disabled"] for b in buttons] == [True, True]  # "Closed · reason", chart
        assert buttons[0]["label"] == f"Closed · {reason.replace('_', '-')}"
        c = fields_of(closed)
        win = pnl >= 0
        pct = pnl / (entry * size) * 100
        assert closed.embeds[0]["title"] == (f"{'✅' if win else '❌'} LONG closed · BTC/USDT · "
                                             f"{pnl:+,.2f} USDT ({pct:+,.2f} %)")
        assert closed.embeds[0]["color"] == (0x26A65B if win else 0xD64541)
        assert c["Exit"] == f"{fill:,.2f} USDT"
        assert c["Exit reason"] == reason.replace("_", "-")
        assert c["Run realised"] == f"{total:+,.2f} USDT"
        assert c["Fees"] == f"{entry * size * 0.001 + fill * size * 0.001:,.2f} USDT"
        chart = mpimg.imread(io.BytesIO(closed.attachment("trade.png").data), format="png")
        assert chart.shape[:2] == (600, 800)
        assert f"trade #{k}" in closed.embeds[0]["footer"]["text"]


async def test_positions_pnl_trades_and_close_with_confirmation(tmp_path):
    async with bot_env(tmp_path) as env:
        # the role trader's own run: closing it needs no manager role
        _, run_id = await start_run(env, params="stop_pct=5 take_pct=5", user=ROLE_TRADER)
        live = env.runtime.engine.runs[run_id]
        candle = await env.ex.emit_candle("BTC/USDT", "1m")
        await until(lambda: bool(live.portfolio.positions))
        positions = await env.ds.invoke("positions", user_id=VISITOR)
        await positions.wait_done(timeout=10)
        pnl = await env.ds.invoke("pnl", {"run": run_id}, user_id=VISITOR)
        await pnl.wait_done(timeout=10)
        choices = await env.ds.autocomplete("close", {"run": run_id, "position": ""},
                                            focused="position")
        run_choices = await env.ds.autocomplete("pnl", {"run": ""}, focused="run")
        refused = await env.ds.invoke("close", {"run": run_id, "position": 1}, user_id=VISITOR)
        await refused.wait_done(timeout=10)
        ask = await env.ds.invoke("close", {"run": run_id, "position": 1},
                                  user_id=ROLE_TRADER)
        await ask.wait_done(timeout=10)
        assert ask.ephemeral and live.portfolio.positions  # nothing closed before confirming
        confirm = await env.ds.click(ask.final, ask.final.custom_ids[0], user_id=ROLE_TRADER)
        await confirm.wait_done(timeout=10)
        await until(lambda: not live.portfolio.positions)
        trades = await env.ds.invoke("trades", {}, user_id=VISITOR)
        await trades.wait_done(timeout=10)

    field = positions.final.embeds[0]["fields"][0]
    assert field["name"] == f"{run_id} #1 · LONG BTC/USDT"
    assert f"entry {candle.close:,.2f}" in field["value"]
    assert f"SL {candle.close * 0.95:,.2f}" in field["value"]
    assert "uPnL 0.00 USDT (+0.00 %)" in field["value"]
    assert {f["name"] for f in pnl.final.embeds[0]["fields"]} >= {
        "Equity", "Realised", "Unrealised", "Win rate", "Max drawdown"}
    assert [c["value"] for c in choices] == ["all", "1"]
    assert [c["value"] for c in run_choices] == [run_id]
    assert run_choices[0]["name"] == f"{run_id} · always_long BTC/USDT 1m · running"
    assert refused.ephemeral and "You may not use /close" in \
        refused.final.embeds[0]["description"]
    assert "Closed #1 LONG BTC/USDT" in confirm.final.embeds[0]["title"]
    assert "manual close" in trades.final.embeds[0]["description"]


async def test_unauthorised_forward_start_is_refused_and_nothing_starts(tmp_path):
    async with bot_env(tmp_path) as env:
        record = await env.ds.invoke("forward start", {"strategy": "sma_cross",
                                                       "symbol": "BTC/USDT"}, user_id=VISITOR)
        await record.wait_done(timeout=10)
        await asyncio.sleep(0.2)
        runs = await env.runtime.service.runs()
    assert record.ephemeral and "You may not use /forward start" in \
        record.final.embeds[0]["description"]
    assert runs == [] and env.runtime.engine.runs == {}


@pytest.mark.parametrize("command,options,message", [
    ("forward start", {"strategy": "nope", "symbol": "BTC/USDT"}, "unknown strategy 'nope'"),
    ("forward start", {"strategy": "sma_cross", "symbol": "DOGE/USDT"},
     "unknown symbol DOGE/USDT on bybit"),
    ("forward start", {"strategy": "sma_cross", "symbol": "BTC/USDT", "params": "slow=x"},
     "slow takes int values"),
    ("forward start", {"strategy": "mtf_trend", "symbol": "BTC/USDT", "timeframe": "1d"},
     "mtf_trend trades below 4h"),
    ("forward stop", {"run": "abcdef"}, "unknown run 'abcdef'"),
    ("trades", {"run": "abcdef"}, "unknown run 'abcdef'"),
    ("pnl", {"run": "abcdef"}, "unknown run 'abcdef'"),
    ("close", {"run": "abcdef", "position": 1}, "unknown run 'abcdef'"),
])
async def test_bad_forward_input_gets_an_ephemeral_answer(tmp_path, command, options, message):
    async with bot_env(tmp_path) as env:
        record = await env.ds.invoke(command, options, user_id=TRADER)
        await record.wait_done(lambda r: r.final is not None and r.final.embeds, timeout=30)
        visible = [m for m in record.messages if not m.deleted]
    assert not record.expired and record.ephemeral
    assert len(visible) == 1 and visible[0].ephemeral
    assert message in visible[0].embeds[0]["description"]


async def test_the_stop_reply_names_the_runs_channel_wherever_it_is_typed(tmp_path):
    other = CHANNEL + 1
    async with bot_env(tmp_path, channels=(other,)) as env:
        start, run_id = await start_run(env)
        stop = await env.ds.invoke("forward stop", {"run": run_id}, user_id=TRADER,
                                   channel_id=other)
        await stop.wait_done(lambda r: r.final is not None and "stopped" in r.final.content,
                             timeout=20)
    # no alerts channel is set: the run's alerts go where it was started, not where /stop was
    assert start.final.content.endswith(f"Its alerts are posted in <#{CHANNEL}>.")
    assert stop.final.content == f"⏹️ Run `{run_id}` stopped. Its alerts are posted in " \
                                 f"<#{CHANNEL}>."
