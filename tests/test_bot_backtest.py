"""/backtest and read commands through the real discord.py client and the Discord stand-in."""

from __future__ import annotations

import io

import matplotlib.image as mpimg
import pytest

from tests.bot_helpers import TRADER, VISITOR, bot_env

PNG = b"\x89PNG\r\n\x1a\n"


def decode_png(data: bytes):
    assert data[:8] == PNG
    return mpimg.imread(io.BytesIO(data), format="png")


async def test_backtest_posts_metrics_charts_and_csv(tmp_path):
    async with bot_env(tmp_path) as env:
        record = await env.ds.invoke("backtest run", {
            "strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
            "start": "2019-01-01", "end": "2019-12-31", "params": "fast=10 slow=50"},
            user_id=TRADER)
        await record.wait_done(lambda r: r.final is not None and bool(r.final.embeds),
                               timeout=60)
    assert not record.expired and record.deferred
    assert record.ephemeral and "Backtest done" in record.original.content  # the invoker's note
    final = record.final
    assert not final.ephemeral  # the results are for the whole channel
    metrics = final.embeds[0]
    assert metrics["title"] == "sma_cross · BTC/USDT 1h · binance"
    fields = {f["name"]: f["value"] for f in metrics["fields"]}
    assert {"Return", "Max drawdown", "Sharpe", "Win rate", "Profit factor", "Trades", "Fees",
            "SL/TP in one candle"} <= set(fields)
    # 2019 has 8,760 hours; the real data misses 28 of them (exchange outages, kept as gaps)
    assert "2019-01-01 00:00 → 2019-12-31 23:00 UTC · 8,732 candles" in metrics["description"]
    names = sorted(a.filename for a in final.attachments)
    assert names == ["equity.png", "price.png", "trades.csv"]
    for name in ("price.png", "equity.png"):
        image = decode_png(final.attachment(name).data)
        assert image.shape[0] > 300 and image.shape[1] > 800
    csv = final.attachment("trades.csv").data.decode().splitlines()
    assert csv[0].startswith("id,side,entry_time") and len(csv) - 1 == int(fields["Trades"])


@pytest.mark.parametrize("options,message", [
    ({"strategy": "nope"}, "unknown strategy 'nope'"),
    ({"symbol": "BTCUSDT"}, "not in BASE/QUOTE form"),
    ({"start": "2019-02-30"}, "bad start date '2019-02-30'"),
    ({"start": "2019-06-01", "end": "2019-01-01"}, "is not before end"),
    ({"params": "fast=abc"}, "fast takes int values"),
    ({"params": "speed=1"}, "has no parameter 'speed'"),
    ({"params": "fast"}, "not key=value"),
    ({"symbol": "DOGE/USDT"}, "no DOGE/USDT 1h candles for binance"),
])
async def test_bad_backtest_input_gets_an_ephemeral_answer(tmp_path, options, message):
    base = {"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h"}
    async with bot_env(tmp_path) as env:
        record = await env.ds.invoke("backtest run", {**base, **options}, user_id=TRADER)
        await record.wait_done(lambda r: any(m.ephemeral for m in r.messages)
                               or (r.ephemeral and r.final is not None), timeout=30)
        visible = [m for m in record.messages if not m.deleted]
    assert not record.expired
    assert len(visible) == 1 and visible[0].ephemeral
    assert message in visible[0].embeds[0]["description"]


async def test_visitor_may_read_but_not_backtest(tmp_path):
    async with bot_env(tmp_path) as env:
        refused = await env.ds.invoke("backtest run", {"strategy": "sma_cross",
                                                   "symbol": "BTC/USDT", "timeframe": "1h"},
                                      user_id=VISITOR)
        await refused.wait_done(timeout=10)
        strategies = await env.ds.invoke("strategies", user_id=VISITOR)
        await strategies.wait_done(timeout=10)
        async with env.runtime.store.db.execute(
                "SELECT actor, action, detail FROM audit") as cur:
            audit = [tuple(r) for r in await cur.fetchall()]
    assert refused.ephemeral
    assert "You may not use /backtest" in refused.final.embeds[0]["description"]
    assert (f"discord:{VISITOR}", "refused") == audit[-1][:2] and "/backtest" in audit[-1][2]
    assert not strategies.ephemeral
    names = [f["name"].split(" · ")[0] for f in strategies.final.embeds[0]["fields"]]
    assert {"sma_cross", "rsi_reversion", "donchian_breakout", "mtf_trend"} <= set(names)


async def test_autocomplete_offers_strategies_symbols_and_timeframe_choices(tmp_path):
    async with bot_env(tmp_path) as env:
        strategies = await env.ds.autocomplete("backtest", {"strategy": "sm"},
                                               focused="strategy")
        symbols = await env.ds.autocomplete("backtest", {"symbol": "eth"}, focused="symbol")
        schema = env.ds.commands(env.ds.world.guild_id)["backtest"]
    assert [c["value"] for c in strategies] == ["sma_cross"]
    assert "ETH/USDT" in [c["value"] for c in symbols]
    timeframe = next(o for o in schema["options"] if o["name"] == "timeframe")
    assert [c["value"] for c in timeframe["choices"]] == ["1m", "5m", "15m", "30m", "1h", "4h",
                                                          "1d", "1w"]
