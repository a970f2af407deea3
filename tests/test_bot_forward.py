"""/forward, /positions, /trades, /pnl, /close and trade alerts, end to end."""

from __future__ import annotations

import asyncio
import io

import matplotlib.image as mpimg
import pytest

from tests.bot_helpers import CHANNEL, ROLE_TRADER, TRADER, VISITOR, bot_env
from tests.forward_helpers import until

LONG = "stop_pct=1 take_pct=0.5"


async def start_run(env, strategy="always_long", params=LONG, user=TRADER):
    record = await env.ds.invoke("forward start", {"strategy": strategy, "symbol": "BTC/USDT",
                                                   "timeframe": "1m", "params": params},
                                 user_id=user, channel_id=CHANNEL)
    await record.wait_done(lambda r: len(r.messages) == 2, timeout=30)
    run_id = next(iter(env.runtime.engine.runs))
    await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
    return record, run_id


def alerts(env, title_part: str):
    return [m for m in env.ds.channel_messages(CHANNEL)
            if m.embeds and title_part in (m.embeds[0].get("title") or "")]


async def test_forward_start_posts_trade_alerts_with_the_right_numbers(tmp_path):
    async with bot_env(tmp_path) as env:
        record, run_id = await start_run(env)
        assert record.ephemeral and not record.final.ephemeral
        assert record.final.embeds[0]["title"] == f"▶️ Run {run_id} started"
        live = env.runtime.engine.runs[run_id]
        opened_at = await env.ex.emit_candle("BTC/USDT", "1m")
        opened = await env.ds.wait_for_message(
            CHANNEL, lambda m: bool(m.embeds) and "LONG opened" in m.embeds[0]["title"],
            timeout=10)
        position = live.portfolio.positions[0]
        for _ in range(400):  # until the stop-loss (1 %) or take-profit (0.5 %) is hit
            await env.ex.emit_candle("BTC/USDT", "1m")
            if not live.portfolio.positions or live.portfolio.trades:
                break
        closed = await env.ds.wait_for_message(
            CHANNEL, lambda m: bool(m.embeds) and "closed" in m.embeds[0]["title"], timeout=15)
        trade = (await env.runtime.service.trades(run_id))[0]

    embed = opened.embeds[0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert embed["title"] == "🟢 LONG opened · BTC/USDT"
    assert fields["Entry"] == f"{opened_at.close:,.2f}" == f"{position.entry_price:,.2f}"
    assert fields["Take-profit"] == f"{position.take_profit:,.2f}"
    assert fields["Stop-loss"] == f"{position.stop_loss:,.2f}"
    assert fields["Size"] == f"{position.size:,.6g} BTC"
    assert opened.custom_ids == [f"pb:close:{run_id}:1", f"pb:be:{run_id}:1",
                                 f"pb:chart:{run_id}:1"]
    embed = closed.embeds[0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    win = trade.pnl >= 0
    assert trade.exit_reason in ("take_profit", "stop_loss")
    assert embed["title"] == (f"{'✅' if win else '❌'} LONG closed · BTC/USDT · "
                              f"{trade.pnl:,.2f} USDT ({trade.pnl_pct:+,.2f} %)")
    assert fields["Exit"] == f"{trade.exit_price:,.2f}"
    assert fields["Exit reason"] == trade.exit_reason.replace("_", "-")
    assert fields["PnL"] == f"{trade.pnl:,.2f} USDT\n{trade.pnl_pct:+,.2f} %"
    assert embed["color"] == (0x26A65B if win else 0xD64541)  # green win, red loss
    chart = mpimg.imread(io.BytesIO(closed.attachment("trade.png").data), format="png")
    assert chart.shape[1] >= 500


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
