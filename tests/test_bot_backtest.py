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


def fields_of(message) -> dict[str, str]:
    return {f["name"]: f["value"] for f in message.embeds[0]["fields"]}


async def test_backtest_run_posts_exact_figures_charts_and_is_posted_again_from_history(
        tmp_path):
    """The README's backtest (real 2019 candles): its published figures, the daily Sharpe,
    every chart, then /backtest history lists it and posts it again — from its files, and
    once they are gone, by running the stored request again."""
    async with bot_env(tmp_path) as env:
        record = await env.ds.invoke("backtest run", {  # no timeframe: the strategy's 1h
            "strategy": "sma_cross", "symbol": "BTC/USDT", "start": "2019-01-01",
            "end": "2019-12-31", "params": "fast=10, slow=50"}, user_id=TRADER)
        await record.wait_done(lambda r: r.final is not None and bool(r.final.embeds),
                               timeout=60)
        listing = await env.ds.invoke("backtest history", user_id=VISITOR)
        await listing.wait_done(timeout=10)
        again = await env.ds.invoke("backtest history", {"id": 1}, user_id=VISITOR)
        await again.wait_done(lambda r: r.final is not None and bool(r.final.attachments),
                              timeout=30)
        for path in (tmp_path / "out").rglob("*.png"):
            path.unlink()  # a redeploy lost the files: the stored request runs again
        picked = await env.ds.click(listing.final, "pb:bthist", component_type=3,
                                    values=["1"], user_id=VISITOR)
        await picked.wait_done(lambda r: r.final is not None and bool(r.final.attachments),
                               timeout=60)
    assert not record.expired and record.deferred
    assert record.ephemeral and "Backtest done" in record.original.content  # the invoker's note
    assert "(backtest #1)" in record.original.content
    final = record.final
    assert not final.ephemeral  # the results are for the whole channel
    metrics = final.embeds[0]
    assert metrics["title"] == "sma_cross · BTC/USDT 1h · binance"
    # 2019 has 8,760 hours; the real data misses 28 of them (exchange outages, kept as gaps)
    assert "2019-01-01 00:00 → 2019-12-31 23:00 UTC · 8,732 candles" in metrics["description"]
    assert "`fast=10 slow=50 size_percent=95.0" in metrics["description"]
    fields = fields_of(final)
    assert {k: fields[k] for k in ("Return", "Max drawdown", "Win rate", "Profit factor",
                                   "Trades", "Fees", "Final equity", "Buy & hold")} == {
        "Return": "+36.61 %", "Max drawdown": "-40.29 %", "Win rate": "27.05 %",
        "Profit factor": "1.18", "Trades": "122", "Fees": "3,028.36 USDT",
        "Final equity": "13,661.03 USDT", "Buy & hold": "+94.45 %"}
    assert fields["Sharpe (daily, ann.)"] == "0.86" and fields["Sortino (daily, ann.)"] == "1.48"
    assert fields["CAGR"] == "+36.61 %" and fields["Calmar"] == "0.91"  # a full year
    assert fields["Exits by reason"] == "signal · 122 · 33 W / 89 L · +3,661.03 USDT"
    assert metrics["footer"]["text"].endswith("binance_BTC-USDT_1h.parquet · backtest #1")
    names = sorted(a.filename for a in final.attachments)
    assert names == ["equity.png", "monthly.png", "price.png", "trades.csv"]
    assert [e.get("image", {}).get("url") for e in final.embeds] == [
        "attachment://price.png", "attachment://equity.png", "attachment://monthly.png"]
    for name in ("price.png", "equity.png", "monthly.png"):
        assert decode_png(final.attachment(name).data).shape[1] == 800
    csv = final.attachment("trades.csv").data.decode().splitlines()
    assert csv[0].startswith("id,side,entry_time") and len(csv) - 1 == 122
    # the history lists it; id:1 and the menu post the same figures again
    history = listing.final.embeds[0]
    assert not listing.ephemeral and history["title"] == "🗂️ Backtest history"
    assert history["description"].startswith("`#1` **sma_cross** BTC/USDT 1h · 2019-01-01 → "
                                             "2019-12-31\n+36.61 % · 122 trades · "
                                             f"<@{TRADER}>")
    assert listing.final.custom_ids == ["pb:bthist"]
    for repost in (again, picked):
        assert not repost.final.ephemeral
        assert fields_of(repost.final) == {**fields, **({"Note": fields_of(
            repost.final)["Note"]} if repost is picked else {})}
        assert sorted(a.filename for a in repost.final.attachments) == names
    assert "charts drawn again from the stored request" in fields_of(picked.final)["Note"]


async def test_backtest_run_takes_the_cli_options_and_hides_cagr_for_short_windows(tmp_path):
    async with bot_env(tmp_path) as env:
        record = await env.ds.invoke("backtest run", {
            "strategy": "rsi_reversion", "symbol": "BTC/USDT", "timeframe": "1h",
            "exchange": "binance", "start": "2019-05-01", "end": "2019-05-31",
            "fee_bps": 0.0, "maker_fee_bps": 0.0, "slippage_bps": 5.0, "balance": 2500.0,
            "params": "oversold=35,overbought=65"}, user_id=TRADER)
        await record.wait_done(lambda r: r.final is not None and bool(r.final.embeds),
                               timeout=60)
    fields = fields_of(record.final)
    embed = record.final.embeds[0]
    assert "oversold=35.0 overbought=65.0" in embed["description"]
    assert int(fields["Trades"]) > 0
    assert fields["Fees"] == "0.00 USDT"
    assert embed["footer"]["text"].startswith("fees 0/0 bp · slippage 5 bp")
    assert "CAGR" not in fields and "Calmar" not in fields  # 31 days: not annualised
    assert "31 days: too short to annualise, so no CAGR or Calmar" in fields["Note"]
    assert "monthly.png" not in [a.filename for a in record.final.attachments]  # < 2 months
    equity = float(fields["Final equity"].split()[0].replace(",", ""))
    # the return is shown to 0.01 %: 0.005 % of 2,500 is 0.125
    assert equity == pytest.approx(2500.0 * (1 + float(fields["Return"].split()[0]) / 100),
                                   abs=0.13)


@pytest.mark.parametrize("options,message", [
    ({"strategy": "nope"}, "unknown strategy 'nope'"),
    ({"symbol": "BTCUSDT"}, "not in BASE/QUOTE form"),
    ({"start": "2019-02-30"}, "bad start date '2019-02-30'"),
    ({"start": "2019-06-01", "end": "2019-01-01"}, "is not before end"),
    ({"params": "fast=abc"}, "fast takes int values"),
    ({"params": "speed=1"}, "has no parameter 'speed'"),
    ({"params": "fast"}, "not key=value"),
    ({"symbol": "DOGE/USDT"}, "No DOGE/USDT 1h candles from binance are stored for"),
    ({"exchange": "no such"}, "exchange"),
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
    assert "You may not use /backtest run" in refused.final.embeds[0]["description"]
    assert (f"discord:{VISITOR}", "refused") == audit[-1][:2] and "/backtest" in audit[-1][2]
    assert not strategies.ephemeral
    names = [f["name"].split(" · ")[0] for f in strategies.final.embeds[0]["fields"]]
    assert {"sma_cross", "rsi_reversion", "donchian_breakout", "mtf_trend"} <= set(names)


async def test_autocomplete_offers_strategies_symbols_and_timeframe_choices(tmp_path):
    async with bot_env(tmp_path) as env:
        strategies = await env.ds.autocomplete("backtest run", {"strategy": "sm"},
                                               focused="strategy")
        symbols = await env.ds.autocomplete("backtest run", {"symbol": "eth"},
                                            focused="symbol")
        schema = env.ds.commands(env.ds.world.guild_id)["backtest"]["options"][0]
    assert [c["value"] for c in strategies] == ["sma_cross"]
    assert "ETH/USDT" in [c["value"] for c in symbols]
    timeframe = next(o for o in schema["options"] if o["name"] == "timeframe")
    assert [c["value"] for c in timeframe["choices"]] == ["1m", "5m", "15m", "30m", "1h", "4h",
                                                          "1d", "1w"]
