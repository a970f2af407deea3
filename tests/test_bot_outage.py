"""Discord trouble never stops the engine, and no alert is lost to an outage: the engine trades
while Discord is down, the bot reconnects, stale alerts arrive as one summary per run, and a run
that caught up after paperbot was down says so in one alert."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot import alerts as alerts_module
from bot.app import serve
from bot.client import PaperBot
from bot.keeper import BotKeeper
from engine.forward.engine import RunSpec
from engine.runtime import Runtime
from engine.workers import JobPool
from tests.bot_helpers import CHANNEL, TRADER
from tests.forward_helpers import MINUTES, settings_for, until
from tests.helpers import SAMPLE_DATA
from tests.standins.discord_api import DiscordStandin, StandinUser
from tests.standins.exchange import CandleSeries, ExchangeStandin

TIGHT = {"stop_pct": "0.15", "take_pct": "0.15"}  # always_long: a trade every few candles


@asynccontextmanager
async def service(tmp_path: Path, ds: DiscordStandin,
                  ex: ExchangeStandin) -> AsyncIterator[tuple[Runtime, BotKeeper]]:
    """serve() in the background (short reconnect backoff); yields once it has started."""
    settings = settings_for(tmp_path, ex, "bybit", discord_token=ds.token,
                            guild_id=ds.world.guild_id, allowed_user_ids=str(TRADER),
                            data_dir=SAMPLE_DATA, out_dir=tmp_path / "out", offline=True)
    stop = asyncio.Event()
    started: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_start(runtime: Runtime, keeper: BotKeeper) -> None:
        started.set_result((runtime, keeper))

    task = asyncio.create_task(serve(settings, jobs=JobPool(0), stop=stop, on_start=on_start,
                                     client_options={"guild_ready_timeout": 0.05},
                                     bot_backoff=(0.2, 0.5)))
    try:
        yield await asyncio.wait_for(asyncio.shield(started), timeout=60)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=20)


def titles(ds: DiscordStandin) -> list[str]:
    return [m.embeds[0].get("title") or "" for m in ds.channel_messages(CHANNEL) if m.embeds]


async def trade_until_closed(ex: ExchangeStandin, live, count: int, limit: int = 600) -> None:
    for _ in range(limit):
        if len(live.portfolio.trades) >= count:
            return
        await ex.emit_candle("BTC/USDT", "1m")
        await asyncio.sleep(0.005)
    raise AssertionError(f"fewer than {count} trades in {limit} candles")


async def test_discord_down_at_boot_the_engine_trades_and_alerts_arrive_later(tmp_path,
                                                                              monkeypatch):
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=900, cursor=200)
    failed_once: list[bool] = []
    setup_hook = PaperBot.setup_hook

    async def flaky_setup_hook(self):  # an exception inside discord.py's start-up, once
        if not failed_once:
            failed_once.append(True)
            raise RuntimeError("boom inside setup_hook")
        await setup_hook(self)

    monkeypatch.setattr(PaperBot, "setup_hook", flaky_setup_hook)
    async with ExchangeStandin([series]) as ex, DiscordStandin(
            users=[StandinUser(TRADER)], channel_ids=[CHANNEL]) as ds:
        await ds.go_down()  # Discord is unreachable when the service starts
        async with service(tmp_path, ds, ex) as (runtime, keeper):
            record = await runtime.service.start_run(RunSpec(
                "always_long", "BTC/USDT", timeframe="1m", params=TIGHT, channel_id=CHANNEL))
            await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
            live = runtime.engine.runs[record.id]
            await trade_until_closed(ex, live, 2)
            await until(lambda: live.last_candle_ts == int(series.ts[ex.cursor(
                "BTC/USDT", "1m") - 1]), what="every emitted candle processed")
            attempts_while_down = keeper.attempts
            trades = await runtime.service.trades(record.id)
            assert not keeper.is_ready() and not ds.channel_messages(CHANNEL)
            await ds.come_back()
            await ds.wait_until(keeper.is_ready, timeout=30, what="the bot reconnected")
            await ds.wait_until(lambda: sum("closed" in t for t in titles(ds)) >= len(trades),
                                timeout=30, what="the held alerts delivered")
            await asyncio.sleep(0.3)
            rows = await runtime.store.pending_events(limit=100)
    assert attempts_while_down >= 2 and failed_once  # it kept trying, through the exception
    assert len(trades) >= 2
    closed = [t for t in titles(ds) if "closed" in t]
    assert len(closed) == len(trades)  # one alert per trade, none lost
    assert any(t.startswith(f"▶️ Run {record.id} started") for t in titles(ds))
    assert rows == []  # the outbox is empty


async def test_alerts_held_longer_than_stale_arrive_as_one_summary_per_run(tmp_path,
                                                                           monkeypatch):
    monkeypatch.setattr(alerts_module, "STALE_MS", 300)
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=900, cursor=200)
    async with ExchangeStandin([series]) as ex, DiscordStandin(
            users=[StandinUser(TRADER)], channel_ids=[CHANNEL]) as ds, \
            service(tmp_path, ds, ex) as (runtime, keeper):
        await ds.wait_until(keeper.is_ready, timeout=30, what="bot ready")
        record = await runtime.service.start_run(RunSpec(
            "always_long", "BTC/USDT", timeframe="1m", params=TIGHT, channel_id=CHANNEL))
        await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
        await ds.wait_until(lambda: any("started" in t for t in titles(ds)), timeout=10)
        before = len(ds.channel_messages(CHANNEL))
        await ds.go_down()  # Discord goes away mid-run
        live = runtime.engine.runs[record.id]
        await trade_until_closed(ex, live, 3)
        await until(lambda: live.last_candle_ts == int(series.ts[ex.cursor(
            "BTC/USDT", "1m") - 1]), what="every emitted candle processed")
        trades = await runtime.service.trades(record.id)
        await asyncio.sleep(0.5)  # the held alerts are now stale
        await ds.come_back()
        await ds.wait_until(lambda: len(ds.channel_messages(CHANNEL)) > before,
                            timeout=30, what="the summary")
        await asyncio.sleep(0.5)  # nothing else follows
        after = ds.channel_messages(CHANNEL)[before:]
        rows = await runtime.store.pending_events(limit=100)
    after_titles = [m.embeds[0]["title"] for m in after]
    summaries = [m.embeds[0] for m in after if m.embeds[0]["title"].startswith("📬")]
    assert len(summaries) == 1, after_titles
    assert not any("opened" in t or "closed" in t for t in after_titles if t[0] != "📬")
    embed = summaries[0]
    assert embed["title"].startswith("📬 While alerts were down")
    assert f"{len(trades)} trades closed" in embed["title"]
    for trade in trades:  # each trade listed with its PnL
        assert f"`#{trade.id}`" in embed["description"]
        assert f"{trade.pnl:,.2f} USDT" in embed["description"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Realised"] == f"{sum(t.pnl for t in trades):,.2f} USDT"
    assert rows == []


async def test_a_run_that_caught_up_after_downtime_posts_one_alert(tmp_path):
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=900, cursor=200)
    async with ExchangeStandin([series]) as ex, DiscordStandin(
            users=[StandinUser(TRADER)], channel_ids=[CHANNEL]) as ds:
        async with service(tmp_path, ds, ex) as (runtime, keeper):
            await ds.wait_until(keeper.is_ready, timeout=30, what="bot ready")
            record = await runtime.service.start_run(RunSpec(
                "always_long", "BTC/USDT", timeframe="1m", params=TIGHT, channel_id=CHANNEL))
            await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
            live = runtime.engine.runs[record.id]
            await ex.emit_candle("BTC/USDT", "1m")
            await until(lambda: bool(live.portfolio.positions))
            await ds.wait_until(lambda: any("LONG opened" in t for t in titles(ds)), timeout=10)
        # paperbot is down for 40 minutes of candles; positions open and close meanwhile
        await ex.replay("BTC/USDT", "1m", 40)
        before = len(ds.channel_messages(CHANNEL))
        async with service(tmp_path, ds, ex) as (runtime, keeper):
            await ds.wait_until(keeper.is_ready, timeout=30, what="bot ready")
            await until(lambda: record.id in runtime.engine.runs, timeout=20)
            await ds.wait_until(lambda: any(t.startswith("🔁") for t in titles(ds)),
                                timeout=20, what="the catch-up alert")
            await asyncio.sleep(0.5)
            settled = [t for t in await runtime.service.trades(record.id)
                       if t.settled_on_recovery]
            after = [m.embeds[0] for m in ds.channel_messages(CHANNEL)[before:] if m.embeds]
    assert len(settled) >= 2
    catch_up = [e for e in after if e["title"].startswith("🔁")]
    assert len(catch_up) == 1
    assert catch_up[0]["title"].startswith("🔁 While down 40m: "
                                           f"{len(settled)} trades settled")
    assert "40 missed candles processed" in catch_up[0]["description"]
    for trade in settled:
        assert f"`#{trade.id}`" in catch_up[0]["description"]
    # no per-trade alerts for what the catch-up settled
    assert not any("LONG closed" in e["title"] or "LONG opened" in e["title"] for e in after), \
        [e["title"] for e in after]
