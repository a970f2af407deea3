"""/optimize, /walkforward, /lookahead and the research buttons, end to end through the real
discord.py client and the Discord stand-in."""

from __future__ import annotations

import io

import matplotlib.image as mpimg

from tests.bot_helpers import CHANNEL, TRADER, VISITOR, bot_env
from tests.research_helpers import write_strategies

OPTIMIZE = {"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1m",
            "start": "2025-05-21", "end": "2025-05-22", "space": "fast=5:15:5 slow=20:40:10",
            "sampler": "grid", "min_trades": 1, "trials": 50}


def png_shape(data: bytes) -> tuple[int, ...]:
    return mpimg.imread(io.BytesIO(data), format="png").shape


async def test_optimize_posts_the_study_and_its_buttons_work(tmp_path):
    async with bot_env(tmp_path) as env:
        record = await env.ds.invoke("optimize run", OPTIMIZE, user_id=TRADER,
                                     channel_id=CHANNEL)
        await record.wait_done(lambda r: r.final is not None and bool(r.final.embeds),
                               timeout=90)
        final = record.final
        embed = final.embeds[0]
        [study_id] = {c.split(":")[-1] for c in final.custom_ids}
        history = await env.ds.invoke("optimize history", user_id=VISITOR)
        await history.wait_done(lambda r: r.final is not None and bool(r.final.embeds),
                                timeout=30)
        best = await env.runtime.service.research.study_best(int(study_id))

        backtest = await env.ds.click(f"pb:best:bt:{study_id}", user_id=TRADER)
        await backtest.wait_done(lambda r: r.final is not None and bool(r.final.embeds),
                                 timeout=60)
        refused = await env.ds.click(f"pb:best:fw:{study_id}", user_id=VISITOR)
        await refused.wait_done(timeout=10)
        forward = await env.ds.click(f"pb:best:fw:{study_id}", user_id=TRADER)
        await forward.wait_done(lambda r: r.final is not None and "started" in r.final.content,
                                timeout=30)
        runs = list(env.runtime.engine.runs.values())

    assert not record.expired and record.ephemeral and "Study done: 9 trials" in \
        record.original.content
    assert not final.ephemeral
    assert embed["title"].startswith("🔬 sma_cross · BTC/USDT 1m · best sharpe")
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Best parameters"] == f"`fast={best.params['fast']} slow={best.params['slow']}`"
    assert {"Return", "Max drawdown", "Sharpe", "Trades", "Importance"} <= set(fields)
    assert "fast slow" in embed["description"]  # the top-10 table
    assert embed["footer"]["text"].startswith("9 complete · 0 pruned · 0 failed")
    assert [a.filename for a in final.attachments] == ["heatmap.png"]
    assert png_shape(final.attachment("heatmap.png").data)[:2] == (720, 800)
    assert final.custom_ids == [f"pb:best:bt:{study_id}", f"pb:best:fw:{study_id}"]
    studies = history.final.embeds[0]
    assert not history.final.ephemeral and studies["fields"][0]["name"].startswith(
        f"#{study_id} · sma_cross · BTC/USDT 1m")
    # Backtest best: the /backtest reply with the study's best parameters over its span
    result = backtest.final.embeds[0]
    assert result["title"] == "sma_cross · BTC/USDT 1m · binance"
    assert f"fast={best.params['fast']} slow={best.params['slow']}" in result["description"]
    assert "2025-05-21 00:00 → 2025-05-22 23:59 UTC" in result["description"]
    assert best.meta["objective"] == "sharpe"
    # Forward-test best: refused to a visitor, a run with those parameters for a trader
    assert refused.ephemeral and "You may not use the Forward-test best button" in \
        refused.final.embeds[0]["description"]
    assert [(r.record.params["fast"], r.record.params["slow"]) for r in runs] == \
        [(best.params["fast"], best.params["slow"])]
    [run] = runs
    assert forward.ephemeral and f"✅ Run `{run.id}` started with the best of study " \
        f"#{study_id}" in forward.final.content


async def test_monte_carlo_button_lookahead_and_refusals(tmp_path):
    write_strategies(tmp_path / "strategies")
    async with bot_env(tmp_path) as env:
        record = await env.ds.invoke("backtest run", {
            "strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
            "start": "2019-01-01", "end": "2019-12-31"}, user_id=TRADER)
        await record.wait_done(lambda r: r.final is not None and bool(r.final.embeds),
                               timeout=60)
        [button] = record.final.custom_ids
        carlo = await env.ds.click(button, user_id=TRADER)
        await carlo.wait_done(lambda r: r.final is not None and bool(r.final.embeds),
                              timeout=60)
        leak = await env.ds.invoke("lookahead", {"strategy": "leaky", "symbol": "BTC/USDT",
                                                 "timeframe": "1h", "start": "2019-01-01",
                                                 "end": "2019-04-30"}, user_id=TRADER)
        await leak.wait_done(lambda r: r.final is not None and bool(r.final.embeds),
                             timeout=60)
        walk = await env.ds.invoke("walkforward", {
            "strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
            "start": "2019-01-01", "end": "2019-06-30", "train": "60d", "test": "30d",
            "space": "fast=10:20:10 slow=50:100:50", "sampler": "grid", "trials": 4,
            "min_trades": 1}, user_id=TRADER)
        await walk.wait_done(lambda r: r.final is not None and bool(r.final.embeds),
                             timeout=90)
        bad = await env.ds.invoke("optimize run", {**OPTIMIZE, "space": "speed=1:5"},
                                  user_id=TRADER)
        await bad.wait_done(timeout=10)
        visitor = await env.ds.invoke("optimize run", OPTIMIZE, user_id=VISITOR)
        await visitor.wait_done(timeout=10)

    assert button.startswith("pb:mc:sma_cross_BTC-USDT_1h_")
    mc = carlo.final.embeds[0]
    assert mc["title"] == "🎲 sma_cross BTC/USDT 1h · Monte Carlo"
    assert mc["description"].startswith("1,000 runs each · seed 7 · ")
    names = [f["name"] for f in mc["fields"]]
    assert names == ["shuffle · return p5 / p50 / p95", "shuffle · max drawdown p5 / p50 / p95",
                     "bootstrap · return p5 / p50 / p95",
                     "bootstrap · max drawdown p5 / p50 / p95"]
    assert png_shape(carlo.final.attachment("montecarlo.png").data)[:2] == (720, 800)
    found = leak.final.embeds[0]
    assert found["title"] == "⚠️ Look-ahead found · leaky · BTC/USDT 1h"
    assert "indicator next_close (1h)" in found["description"]
    wf = walk.final.embeds[0]
    assert wf["title"] == "🚶 Walk-forward · sma_cross · BTC/USDT 1h"
    assert "OOS return" in {f["name"] for f in wf["fields"]}
    assert [a.filename for a in walk.final.attachments] == ["walkforward.png"]
    assert bad.ephemeral and "no parameter 'speed' to search" in \
        bad.final.embeds[0]["description"]
    assert visitor.ephemeral and "You may not use /optimize run" in \
        visitor.final.embeds[0]["description"]
