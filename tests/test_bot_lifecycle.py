"""The run lifecycle from Discord: stop with open positions, pause and resume, a raising
strategy, /close all, /panic, views across runs, /audit."""

from __future__ import annotations

import pytest

from tests.bot_helpers import CHANNEL, ROLE_TRADER, TRADER, VISITOR, bot_env, start_run
from tests.forward_helpers import until
from tests.test_lifecycle import BOOM

BOOM_WIDE = BOOM.replace("0.998", "0.95").replace("1.002", "1.05")

WIDE = "stop_pct=5 take_pct=5"


async def start(env, strategy: str = "always_long", params: str = WIDE,
                user: int = TRADER) -> str:
    _, run_id = await start_run(env, strategy, params, user)
    return run_id


async def candles_until(env, check, limit: int = 300) -> None:
    """Emit candles until ``check()``, then wait until every run processed the last one."""
    for _ in range(limit):
        if check():
            break
        await env.ex.emit_candle("BTC/USDT", "1m")
        await until(lambda: True)
    await until(check, timeout=5, what="the condition after the candles")
    last = int(env.series.ts[env.ex.cursor("BTC/USDT", "1m") - 1])
    await until(lambda: all(r.last_candle_ts == last for r in env.runtime.engine.runs.values()),
                timeout=10, what="every run caught up")


async def invoke(env, name: str, options: dict, user: int = TRADER):
    record = await env.ds.invoke(name, options, user_id=user, channel_id=CHANNEL)
    await record.wait_done(lambda r: r.final is not None, timeout=20)
    return record


async def click(env, record, index: int, user: int = TRADER):
    done = await env.ds.click(record.final, record.final.custom_ids[index], user_id=user)
    await done.wait_done(timeout=20)
    return done


async def test_stop_with_open_positions_offers_three_choices(tmp_path):
    async with bot_env(tmp_path) as env:
        runs = [await start(env) for _ in range(3)]
        lives = [env.runtime.engine.runs[r] for r in runs]
        await candles_until(env, lambda: all(live.portfolio.positions for live in lives))
        asked = [await invoke(env, "forward stop", {"run": r}) for r in runs]
        labels = [[c["label"] for row in a.final.components for c in row["components"]]
                  for a in asked]
        closed = await click(env, asked[0], 0)
        kept = await click(env, asked[1], 1)
        cancelled = await click(env, asked[2], 2)
        statuses = [(await env.runtime.service.run(r)).status for r in runs]
        trades = await env.runtime.service.trades(runs[0])
    assert labels[0] == ["Stop and close 1 position", "Stop entries, keep managing exits",
                         "Cancel"]
    assert all(a.ephemeral for a in asked)
    assert closed.final.embeds[0]["title"] == "Run stopped · 1 position closed at market"
    assert kept.final.embeds[0]["title"] == "Entries stopped · exits still managed (paused)"
    assert cancelled.final.embeds[0]["description"] == "Nothing was changed."
    assert statuses == ["stopped", "paused", "running"]
    assert [t.exit_reason for t in trades] == ["manual"]
    assert lives[1].portfolio.positions and lives[2].portfolio.positions


async def test_pause_resume_and_a_raising_strategy_whose_positions_can_still_be_closed(
        tmp_path):
    async with bot_env(tmp_path) as env:
        (tmp_path / "strategies" / "boom.py").write_text(BOOM_WIDE)
        run_id = await start(env, "boom", "")
        live = env.runtime.engine.runs[run_id]
        await candles_until(env, lambda: bool(live.portfolio.positions))
        await candles_until(env, lambda: live.paused is not None)  # on_candle raised
        alert = await env.ds.wait_for_message(
            CHANNEL, lambda m: bool(m.embeds) and "paused" in m.embeds[0].get("title", ""),
            timeout=10)
        listing = await invoke(env, "forward list", {})
        held = bool(live.portfolio.positions)  # kept: its levels are 5 % away
        asked = await invoke(env, "close", {"run": run_id, "position": "1"})
        closed = await click(env, asked, 0)
        resumed = await invoke(env, "forward resume", {"run": run_id})
        paused = await invoke(env, "forward pause", {"run": run_id}, user=ROLE_TRADER)
    assert held and "Closed #1 LONG" in closed.final.embeds[0]["title"]
    assert alert.embeds[0]["title"] == f"⏸️ Run {run_id} paused"
    assert "strategy boom raised ZeroDivisionError at boom.py:" in \
        alert.embeds[0]["description"]
    field = next(f for f in listing.final.embeds[0]["fields"] if run_id in f["name"])
    assert field["name"].startswith("⏸️") and "strategy boom raised" in field["value"]
    assert resumed.final.embeds[0]["title"] == "Run resumed"
    assert paused.ephemeral and "belongs to" in paused.final.embeds[0]["description"]


async def test_panic_closes_everything_after_confirmation_and_views_cover_every_run(
        tmp_path):
    async with bot_env(tmp_path) as env:
        runs = [await start(env) for _ in range(3)]
        lives = [env.runtime.engine.runs[r] for r in runs]
        await candles_until(env, lambda: all(live.portfolio.positions for live in lives))
        positions = await invoke(env, "positions", {}, user=VISITOR)
        pnl = await invoke(env, "pnl", {}, user=VISITOR)
        summary = await env.runtime.service.pnl_summary()
        refused = await invoke(env, "panic", {}, user=VISITOR)
        asked = await invoke(env, "panic", {})
        question = asked.final.embeds[0]["description"]
        done = await click(env, asked, 0)
        statuses = [(await env.runtime.service.run(r)).status for r in runs]
        closed = [t for r in runs for t in await env.runtime.service.trades(r)]
        audit = await invoke(env, "audit", {"limit": 50})
    fields = {f["name"]: f["value"] for f in pnl.final.embeds[0]["fields"]}
    assert len(positions.final.embeds[0]["fields"]) == 3
    assert fields["Equity"] == f"{summary.equity:,.2f} USDT"
    assert fields["Open positions"] == "3"
    assert all(f"`{r}`" in pnl.final.embeds[0]["description"] for r in runs)
    assert refused.ephemeral and "You may not use /panic" in \
        refused.final.embeds[0]["description"]
    assert question == "Pause 3 running runs and close 3 open positions at market?"
    title = done.final.embeds[0]["title"]
    assert title == "🛑 Kill switch · 3 runs paused · 3 positions closed"
    total = sum(t.pnl for t in closed)
    assert {f["name"]: f["value"] for f in done.final.embeds[0]["fields"]}["Realised"] == \
        f"{total:,.2f} USDT"
    assert statuses == ["paused"] * 3 and len(closed) == 3
    assert all(t.exit_reason == "manual" for t in closed)
    log = audit.final.embeds[0]["description"]
    assert audit.ephemeral and "**panic**" in log and "**refused**" in log
    assert f"<@{VISITOR}>" in log


@pytest.mark.parametrize("options", [{"run": "abcdef", "position": "x"},
                                     {"run": "abcdef", "position": "all"}])
async def test_close_with_a_bad_position_or_run_is_ephemeral(tmp_path, options):
    async with bot_env(tmp_path) as env:
        record = await invoke(env, "close", options)
    assert record.ephemeral and "unknown run 'abcdef'" in record.final.embeds[0]["description"]
