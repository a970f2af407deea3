"""Phone-first Discord, end to end against the stand-ins: the statistics commands on a known
replay (every figure recomputed from the stored trades), paged /trades, /pnl over every run,
a thread per run and a channel per kind of alert, one feed alert per connection, and the
Fetch candles button."""

from __future__ import annotations

import math

import pytest

import engine.service_stats
from data.cache import cache_path, read_candles
from engine import formatting as fmt
from engine.events import DailySummary
from engine.forward.engine import RunSpec
from tests.bot_helpers import CHANNEL, TRADER, VISITOR, bot_env, start_run, titled
from tests.forward_helpers import until

OPS, TRADES, SUMMARY = 900_000_000_000_000_011, 900_000_000_000_000_012, 900_000_000_000_000_013
DAY = 86_400_000


async def ask(env, name: str, options: dict | None = None, user: int = VISITOR):
    record = await env.ds.invoke(name, options or {}, user_id=user)
    await record.wait_done(lambda r: r.final is not None and bool(r.final.embeds), timeout=15)
    assert not record.ephemeral, record.final.embeds[0].get("description")
    return record.final.embeds[0]


def fields_of(embed) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed.get("fields", [])}


async def test_statistics_commands_on_a_known_replay(tmp_path, monkeypatch):
    async with bot_env(tmp_path) as env:
        _, fast = await start_run(env, params="stop_pct=0.2 take_pct=0.2")
        _, cross = await start_run(env, "sma_cross", "fast=5 slow=20")
        await env.ex.replay("BTC/USDT", "1m", 240)
        last = int(env.series.ts[439])
        runs = env.runtime.engine.runs
        await until(lambda: all(r.last_candle_ts == last for r in runs.values()), timeout=20)
        service = env.runtime.service
        by_run = {rid: await service.trades(rid) for rid in (fast, cross)}
        await until(lambda: len(env.ds.channel_messages(CHANNEL)) > 10, timeout=10)
        monkeypatch.setattr(engine.service_stats, "now_ms", lambda: last + 3_600_000)
        stats_all = await ask(env, "stats")
        stats_fast = await ask(env, "stats", {"run": fast})
        daily = await ask(env, "daily", {"run": fast, "count": 3})
        monthly = await ask(env, "monthly", {"count": 2})
        performance = await ask(env, "performance")
        pnl = await ask(env, "pnl")
        trades = await env.ds.invoke("trades", user_id=VISITOR)
        await trades.wait_done(timeout=10)
        page_one = dict(trades.final.embeds[0])
        turned = await env.ds.click(trades.final, "pb:trades:all:2:next", user_id=VISITOR)
        await turned.wait_done(timeout=10)

    every = sorted(by_run[fast] + by_run[cross], key=lambda t: t.exit_time, reverse=True)
    assert len(by_run[fast]) >= 8 and len(every) > 10  # enough for two pages
    wins = sum(t.pnl > 0 for t in every)
    total = sum(t.pnl for t in every)
    # /stats over every run says which runs it covers; its figures come from both
    assert stats_all["title"] == "📈 Stats · all runs (2)"
    assert f"`{cross}`" in stats_all["description"] and f"`{fast}`" in stats_all["description"]
    f = fields_of(stats_all)
    assert f["Trades"] == f"{len(every)} · {wins} W / {len(every) - wins} L"
    assert f["Realised"] == f"{total:+,.2f} USDT"
    assert f["Win rate"] == f"{wins / len(every) * 100:,.2f} %"
    # /stats of one run: by exit reason, long vs short, best/worst, streaks
    own = by_run[fast]
    f = fields_of(stats_fast)
    assert stats_fast["title"] == f"📈 Stats · run {fast}"
    for reason in {t.exit_reason for t in own}:
        group = [t for t in own if t.exit_reason == reason]
        won = sum(t.pnl > 0 for t in group)
        assert (f"{reason.replace('_', '-')} · {len(group)} · {won} W / {len(group) - won} L · "
                f"{sum(t.pnl for t in group):+,.2f} USDT") in f["By exit reason"]
    best = max(own, key=lambda t: t.pnl_pct)
    assert f["Best / worst"].startswith(f"#{best.id} {best.pnl_pct:+,.2f} % "
                                        f"({best.pnl:+,.2f} USDT)")
    assert f["Long vs short"].startswith(f"long · {len(own)} · ")
    # /daily: the replay's day first, with its % of the run's equity at the day's start
    day = (last // DAY) * DAY
    today = [t for t in own if t.exit_time >= day]
    before = sum(t.pnl for t in own if t.exit_time < day)
    rows = daily["description"].split("```")[1].strip().splitlines()
    assert rows[0].split() == ["UTC", "day", "trades", "PnL", "USDT", "%"]
    assert rows[1].split() == [*fmt.day(day).split(), str(len(today)),
                               f"{sum(t.pnl for t in today):+,.2f}",
                               f"{sum(t.pnl for t in today) / (10_000 + before) * 100:+.2f}"]
    assert len(rows) == 4  # three days asked
    assert monthly["title"] == "📆 Monthly · all runs (2)"
    assert monthly["description"].split("```")[1].splitlines()[2].split()[2:4] == [
        str(len(every)), f"{total:+,.2f}"]
    # /performance: one line per strategy on the symbol
    lines = performance["description"].splitlines()
    for name, rid in (("always_long", fast), ("sma_cross", cross)):
        pnl_run = sum(t.pnl for t in by_run[rid])
        head = next(k for k, line in enumerate(lines) if line.startswith(f"**{name}**"))
        assert lines[head].startswith(f"**{name}** BTC/USDT · 1 run · {len(by_run[rid])} "
                                      "trades")
        assert lines[head + 1] == (f"{pnl_run:+,.2f} USDT ({pnl_run / 10_000 * 100:+,.2f} % "
                                   "of their starting balances)")
    # /pnl without a run: the sums, and which runs
    f = fields_of(pnl)
    assert pnl["title"] == "PnL · all runs (2)"
    assert f["Realised"] == f"{total:+,.2f} USDT" and f["Trades"] == str(len(every))
    assert f["Start balances"] == "20,000.00 USDT"
    # /trades: newest first, 10 a page, Next turns the page in place
    pages = math.ceil(len(every) / 10)
    assert page_one["footer"]["text"] == f"page 1/{pages} · {len(every)} trades, newest first"
    first = every[0]
    assert page_one["description"].splitlines()[1].startswith(
        f"`{runs_of(by_run, first)} #{first.id}` LONG BTC/USDT · {fmt.when(first.entry_time)}")
    assert fmt.when(first.entry_time).endswith(" UTC")
    page_two = turned.final.embeds[0]
    eleventh = every[10]
    assert page_two["footer"]["text"].startswith(f"page 2/{pages}")
    assert f"`{runs_of(by_run, eleventh)} #{eleventh.id}`" in page_two["description"]
    assert f"{eleventh.pnl:+,.2f} USDT" in page_two["description"]


def runs_of(by_run: dict, trade) -> str:
    return next(rid for rid, items in by_run.items() if any(t is trade for t in items))


async def test_a_thread_per_run_and_a_channel_per_kind(tmp_path):
    async with bot_env(tmp_path, channels=(SUMMARY,), thread_per_run=True,
                       summary_alerts_channel_id=SUMMARY) as env:
        _, run_id = await start_run(env, params="stop_pct=0.2 take_pct=0.2")
        await env.ds.wait_until(lambda: env.ds.rest.thread_requests, timeout=10,
                                what="the run's thread")
        parent, thread, name = env.ds.rest.thread_requests[0]
        await env.ex.replay("BTC/USDT", "1m", 60)
        live = env.runtime.engine.runs[run_id]
        await until(lambda: len(live.portfolio.trades) >= 2, timeout=20)
        await live.emit_now(DailySummary(run_id, live.last_candle_ts, 10_000.0, 10_000.0,
                                         0.0, 0.0, 1, 2))
        await env.ds.wait_for_message(SUMMARY, timeout=10)
        stop = await env.ds.invoke("forward stop", {"run": run_id}, user_id=TRADER)
        await stop.wait_done(timeout=10)  # always_long holds a position: stop and close it
        close = await env.ds.click(stop.final, stop.final.custom_ids[0], user_id=TRADER)
        await close.wait_done(timeout=20)
        await env.ds.wait_for_message(thread, lambda m: "stopped" in m.embeds[0]["title"],
                                      timeout=10)
        in_channel = [m.embeds[0]["title"] for m in env.ds.channel_messages(CHANNEL)]
        in_thread = [m.embeds[0]["title"] for m in env.ds.channel_messages(thread)]
    (tmp_path / "kinds").mkdir()
    async with bot_env(tmp_path / "kinds", channels=(OPS, TRADES), ops_alerts_channel_id=OPS,
                       trade_alerts_channel_id=TRADES) as env:
        _, other = await start_run(env, params="stop_pct=0.2 take_pct=0.2")
        await env.ex.replay("BTC/USDT", "1m", 60)
        await env.ds.wait_for_message(TRADES, lambda m: "closed" in m.embeds[0]["title"],
                                      timeout=15)
        ops = [m.embeds[0]["title"] for m in env.ds.channel_messages(OPS)]
        trades = [m.embeds[0]["title"] for m in env.ds.channel_messages(TRADES)]
        elsewhere = env.ds.channel_messages(CHANNEL)
    # threads: the started alert starts the thread in the channel; everything else inside
    assert (parent, name) == (CHANNEL, f"run {run_id} · always_long BTC/USDT 1m")
    assert in_channel == [f"▶️ Run {run_id} started"]
    opened = [t for t in in_thread if "opened" in t]
    closed = [t for t in in_thread if "closed" in t]
    assert len(opened) >= 2 and len(closed) >= 2
    assert in_thread[-1] == f"⏹️ Run {run_id} stopped"
    # channels per kind: run events in OPS, trades in TRADES, nothing where it was started
    assert ops == [f"▶️ Run {other} started"]
    assert trades and all("opened" in t or "closed" in t for t in trades)
    assert elsewhere == []


async def test_one_feed_alert_per_connection_naming_the_runs(tmp_path):
    async with bot_env(tmp_path) as env:
        service = env.runtime.service
        first = await service.start_run(RunSpec("always_long", "BTC/USDT", timeframe="1m",
                                                channel_id=CHANNEL))
        second = await service.start_run(RunSpec("sma_cross", "BTC/USDT", timeframe="1m",
                                                 params={"fast": "5", "slow": "20"},
                                                 channel_id=CHANNEL))
        await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
        await env.ex.replay("BTC/USDT", "1m", 5)
        await env.ex.drop_connections()
        await env.ex.replay("BTC/USDT", "1m", 3)  # missed while away: backfilled
        await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")

        def both(part: str):
            found = titled(env, CHANNEL, part)
            return found if found and all(
                f"`{r.id}`" in found[0].embeds[0]["description"] for r in (first, second)) \
                else None

        lost = await env.ds.wait_until(lambda: both("Feed lost"), timeout=20, what="lost")
        restored = await env.ds.wait_until(lambda: both("Feed restored"), timeout=20,
                                           what="restored")
    assert len(lost) == len(restored) == 1  # one message each for the one connection
    assert lost[0].embeds[0]["title"] == "⚠️ Feed lost · bybit spot"
    text = lost[0].embeds[0]["description"]
    assert "**2 runs waiting:**" in text
    assert f"`{first.id}` always_long BTC/USDT 1m" in text
    assert f"`{second.id}` sma_cross BTC/USDT 1m" in text
    assert restored[0].embeds[0]["title"] == "🔌 Feed restored · bybit spot"
    assert "candles backfilled" in restored[0].embeds[0]["description"]


async def test_missing_candles_offer_a_fetch_button_then_the_backtest_runs(tmp_path):
    cache = tmp_path / "cache"
    async with bot_env(tmp_path, offline=False, data_dir=cache) as env:
        record = await env.ds.invoke("backtest run", {
            "strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1m",
            "exchange": "bybit", "start": "2025-05-20", "end": "2025-05-20",
            "params": "fast=5 slow=20"}, user_id=TRADER)
        await record.wait_done(lambda r: r.final is not None and bool(r.final.embeds)
                               and r.final.custom_ids, timeout=30)
        offer = record.final
        offer_embed = dict(offer.embeds[0])
        buttons = [c["label"] for row in offer.components for c in row["components"]]
        pressed = await env.ds.click(offer, offer.custom_ids[0], user_id=TRADER)
        await pressed.wait_done(lambda r: any(not m.ephemeral and m.embeds and m.attachments
                                              for m in r.messages), timeout=60)
        result = next(m for m in pressed.messages if not m.ephemeral and m.attachments)
        klines = [r for r in env.ex.rest_requests if r.path == "/v5/market/kline"]
        stored = read_candles(cache_path(cache, "bybit", "BTC/USDT", "1m"), None, None)
    assert record.ephemeral and offer.ephemeral
    assert offer_embed["title"] == "No candles for this backtest"
    # the span named: the day asked, after 20 candles of warm-up (slow=20)
    assert offer_embed["description"] == (
        "No BTC/USDT 1m candles from bybit are stored for **2025-05-19 23:40 → 2025-05-21 "
        "00:00 UTC (about 1,460 candles)**, warm-up included.")
    assert "paperbot data" not in str(offer_embed) and str(cache) not in str(offer_embed)
    assert buttons == ["Fetch candles"]
    edits = [e.body.get("content") or "" for e in pressed.events if e.kind == "edit_original"]
    assert any(text.startswith("⏳ fetching BTC/USDT 1m from bybit") for text in edits)
    assert any(text.startswith(f"✅ fetched {len(stored)} BTC/USDT 1m candles") for text in
               edits)
    assert klines and len(stored) == 200  # what the exchange had closed
    embed = result.embeds[0]
    assert embed["title"] == "sma_cross · BTC/USDT 1m · bybit"
    assert "2025-05-20 00:00 → 2025-05-20 03:19 UTC · 200 candles" in embed["description"]
    assert sorted(a.filename for a in result.attachments) == [
        "equity.png", "price.png", "trades.csv"]
    assert int(fields_of(embed)["Trades"]) == len(
        result.attachment("trades.csv").data.decode().splitlines()) - 1


@pytest.mark.parametrize("text", [
    "unknown run 'x'; list them with /forward list (or paperbot runs)",
    "cannot write to the output folder /srv/out: Permission denied; choose another with "
    "--out (or PAPERBOT_OUT_DIR)"])
def test_errors_for_phones_carry_no_shell_command_or_path(text):
    from bot.errors import phone_text

    shown = phone_text(text)
    assert "paperbot runs" not in shown and "--out" not in shown and "/srv" not in shown
