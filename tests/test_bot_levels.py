"""Managing positions from Discord: the break-even button, /position, and the alerts for moved
levels and partial exits."""

from __future__ import annotations

import asyncio
import math
import textwrap

from engine.store.level_moves import level_steps
from tests.bot_helpers import CHANNEL, TRADER, VISITOR, bot_env, start_run
from tests.forward_helpers import until

SCALE_LONG = textwrap.dedent('''
    from engine.strategy import Strategy
    from engine.types import Signal

    class ScaleLong(Strategy):
        """Long once, a third out 0.05 % up, the rest at +0.5 % or -1 %."""
        timeframes = ["1m"]

        def on_candle(self, data, portfolio):
            if portfolio.positions or portfolio.trades:
                return None
            close = data.base.close[-1]
            return [Signal.open_long(size=0.03, stop_loss=close * 0.99,
                                     take_profit=close * 1.005,
                                     take_profits=[(close * 1.0005, 1 / 3)])]
''')


def titles(env) -> list[str]:
    return [m.embeds[0].get("title") or "" for m in env.ds.channel_messages(CHANNEL)
            if m.embeds]


async def start(env, strategy: str, params: str = "") -> str:
    _, run_id = await start_run(env, strategy, params)
    return run_id


async def test_break_even_button_and_position_command(tmp_path):
    async with bot_env(tmp_path) as env:
        run_id = await start(env, "always_long", "stop_pct=5 take_pct=5")
        live = env.runtime.engine.runs[run_id]
        await env.ex.emit_candle("BTC/USDT", "1m")
        alert = await env.ds.wait_for_message(
            CHANNEL, lambda m: bool(m.embeds) and "LONG opened" in m.embeds[0]["title"],
            timeout=10)
        pos = live.portfolio.positions[0]
        entry, take, stop0 = pos.entry_price, pos.take_profit, pos.stop_loss
        await env.ex.push_tick("BTC/USDT", "1m", entry * 0.999)  # below the entry
        await until(lambda: live.portfolio.mark_price < entry)
        too_early = await env.ds.click(alert, f"pb:be:{run_id}:1", user_id=TRADER)
        await too_early.wait_done(timeout=10)
        early_confirm = await env.ds.click(too_early.final, too_early.final.custom_ids[0],
                                           user_id=TRADER)
        await early_confirm.wait_done(timeout=10)
        visitor = await env.ds.click(alert, f"pb:be:{run_id}:1", user_id=VISITOR)
        await visitor.wait_done(timeout=10)
        await env.ex.push_tick("BTC/USDT", "1m", entry * 1.002)  # now beyond it
        await until(lambda: live.portfolio.mark_price > entry)
        ask = await env.ds.click(alert, f"pb:be:{run_id}:1", user_id=TRADER)
        await ask.wait_done(timeout=10)
        done = await env.ds.click(ask.final, ask.final.custom_ids[0], user_id=TRADER)
        await done.wait_done(timeout=10)
        moved = await env.ds.wait_for_message(
            CHANNEL, lambda m: bool(m.embeds) and m.embeds[0]["title"].startswith("🔧"),
            timeout=10)
        stored = (await env.runtime.store.positions(run_id))[0]
        wrong = await env.ds.invoke("position stop", {"run": run_id, "position": 1,
                                                      "price": f"{entry * 1.01:.2f}"},
                                    user_id=TRADER)
        await wrong.wait_done(timeout=10)
        removed = await env.ds.invoke("position target", {"run": run_id, "position": 1,
                                                          "price": "off"}, user_id=TRADER)
        await removed.wait_done(timeout=10)
        audit = await env.runtime.store.db.execute_fetchall(
            "SELECT actor, action FROM audit WHERE action='position_update'")
        db = env.runtime.store.db
        await until(lambda: True)
        for _ in range(50):  # the moves reach the events table with their alerts
            steps = await level_steps(db, run_id, 1)
            if len(steps) == 3:
                break
            await asyncio.sleep(0.1)
        chart = await env.ds.click(alert, f"pb:chart:{run_id}:1", user_id=VISITOR)
        await chart.wait_done(lambda r: r.final is not None and bool(r.final.attachments),
                              timeout=20)
    assert "is not beyond the entry" in early_confirm.final.embeds[0]["description"]
    assert visitor.ephemeral and "You may not use the break-even button" in \
        visitor.final.embeds[0]["description"]
    assert done.final.embeds[0]["title"].startswith("🔧 Stop moved to break-even")
    assert moved.embeds[0]["title"] == (f"🔧 Stop moved to {entry:,.2f} (break-even), target "
                                        f"{take:,.2f} · BTC/USDT long #1")
    assert live.portfolio.positions[0].take_profit != live.portfolio.positions[0].take_profit
    assert stored.stop_loss == entry  # stored in the same transaction
    assert wrong.ephemeral and "must be below the price" in wrong.final.embeds[0]["description"]
    assert removed.ephemeral and "Take-profit removed" in removed.final.embeds[0]["title"]
    assert [tuple(r) for r in audit] == [(f"discord:{TRADER}", "position_update")] * 2
    # the level history a chart draws: opened, moved to break-even, target removed
    assert [(s.stop_loss, s.take_profit) for s in steps[:2]] == [(stop0, take),
                                                                 (entry, take)]
    assert steps[2].stop_loss == entry and math.isnan(steps[2].take_profit)
    assert steps[0].ts == pos.entry_time < steps[1].ts <= steps[2].ts
    assert chart.final.attachment("position.png").data[:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_partial_exit_posts_a_took_alert(tmp_path):
    async with bot_env(tmp_path) as env:
        (tmp_path / "strategies" / "scale_long.py").write_text(SCALE_LONG)
        run_id = await start(env, "scale_long")
        live = env.runtime.engine.runs[run_id]
        for _ in range(300):
            await env.ex.emit_candle("BTC/USDT", "1m")
            if await env.runtime.store.exits(run_id):
                break
        took = await env.ds.wait_for_message(
            CHANNEL, lambda m: bool(m.embeds) and m.embeds[0]["title"].startswith("✂️"),
            timeout=10)
        [first, *_] = await env.runtime.store.exits(run_id)
        remaining = live.portfolio.positions[0].size if live.portfolio.positions else 0.0
    assert first.reason == "take_profit" and first.size < 0.03
    assert took.embeds[0]["title"] == (
        f"✂️ Took 33 % at {first.price:,.2f} · {'+' if first.pnl >= 0 else ''}"
        f"{first.pnl:,.2f} USDT · "
        f"{0.03 - first.size:,.6g} BTC left")
    assert remaining in (0.0, 0.03 - first.size)
