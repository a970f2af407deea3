"""Discord latencies of the whole service, against local stand-ins of Discord and the exchange.

Usage: python bench/discord_latency.py [--backtests 5] [--alerts 100]

Runs ``bot.app.serve`` exactly as ``python -m bot`` does (job worker process, SQLite, the real
discord.py client) against the Discord API stand-in of ``tests/standins`` and the exchange
stand-in, both on 127.0.0.1 in this process (one clock: CLOCK_MONOTONIC).

1. ``/backtest sma_cross BTC/USDT 1h 2019-01-01 2019-12-31`` (one year of real 1h candles): from
   the INTERACTION_CREATE dispatch to the stand-in receiving the message with the metrics
   embed and both PNG charts. Target ≤ 3 s.
2. Candle close → alert: from the confirmed kline message leaving the exchange stand-in to the
   stand-in Discord receiving the trade alert (a strategy that opens on one candle and closes
   on the next). Both alerts carry a PNG chart (the opened one: recent candles, entry, SL, TP;
   the closed one: the trade). Target p99 ≤ 300 ms.
3. Chart rendering alone, in this process: the three charts of a 1-year 1h backtest (price with
   indicators and volume, equity, monthly heatmap) and the two alert charts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FLIP = textwrap.dedent('''
    from engine.strategy import Strategy
    from engine.types import Signal

    class Flip(Strategy):
        """Long on one candle, flat on the next."""
        timeframes = ["1m"]

        def on_candle(self, data, portfolio):
            if portfolio.positions:
                return [Signal.close_all()]
            close = data.base.close[-1]
            return [Signal.open_long(50, stop_loss=close * 0.9)]
''')


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def measure(backtests: int, alerts: int) -> None:
    from bench.common import SHARED_DATA
    from bot.app import serve
    from engine.workers import JobPool
    from tests.forward_helpers import settings_for
    from tests.standins.discord_api import DiscordStandin, StandinUser
    from tests.standins.exchange import CandleSeries, ExchangeStandin

    trader, channel = 900_000_000_000_000_042, 900_000_000_000_000_010
    series = CandleSeries.from_parquet(SHARED_DATA / "binance_BTC-USDT_1m.parquet", "BTC/USDT",
                                       "1m", count=2 * alerts + 400, cursor=200)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        async with ExchangeStandin([series]) as ex, \
                DiscordStandin(users=[StandinUser(trader)], channel_ids=[channel]) as ds:
            settings = settings_for(folder, ex, "bybit", discord_token=ds.token,
                                    guild_id=ds.world.guild_id, allowed_user_ids=str(trader),
                                    data_dir=SHARED_DATA, out_dir=folder / "out", offline=True,
                                    log_level="WARNING")
            (folder / "strategies" / "flip.py").write_text(FLIP)
            stop = asyncio.Event()
            ready: asyncio.Future = asyncio.get_running_loop().create_future()

            async def on_start(runtime, keeper):
                ready.set_result((runtime, keeper))

            service = asyncio.create_task(serve(
                settings, jobs=JobPool(1), stop=stop, on_start=on_start,
                client_options={"guild_ready_timeout": 0.05}))
            _, keeper = await asyncio.wait_for(asyncio.shield(ready), timeout=120)
            await ds.wait_until(keeper.is_ready, timeout=60, what="bot ready")

            took = []
            for _ in range(backtests):
                record = await ds.invoke("backtest run", {
                    "strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h",
                    "start": "2019-01-01", "end": "2019-12-31"}, user_id=trader)
                await record.wait_done(lambda r: r.final is not None and len(
                    r.final.attachments) >= 2, timeout=60)
                took.append(record.final.created_at - record.dispatched_at)
            print(f"/backtest, 1 year of 1h candles → embed + 2 charts + CSV posted: "
                  f"median {statistics.median(took):.2f} s, max {max(took):.2f} s over "
                  f"{backtests} runs (target ≤ 3 s)")

            start = await ds.invoke("forward start", {"strategy": "flip", "symbol": "BTC/USDT",
                                                      "timeframe": "1m"},
                                    user_id=trader, channel_id=channel)
            await start.wait_done(lambda r: r.final is not None and "started" in
                                  r.final.content, timeout=60)
            await ds.wait_for_message(channel, timeout=30)  # its "started" alert
            await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
            opened, closed = [], []
            for k in range(2 * alerts):
                seen = len(ds.channel_messages(channel))
                await ex.emit_candle("BTC/USDT", "1m")
                sent = ex.sent_confirmed[-1].perf
                message = await ds.wait_for_message(
                    channel, lambda m, n=seen: len(ds.channel_messages(channel)) > n
                    and m is ds.channel_messages(channel)[-1], timeout=10)
                (opened if k % 2 == 0 else closed).append((message.created_at - sent) * 1000)
            print(f"candle close → trade-opened alert with its PNG chart: p50 "
                  f"{pct(opened, 0.5):.1f} ms, p99 {pct(opened, 0.99):.1f} ms over "
                  f"{len(opened)} alerts (target p99 ≤ 300 ms)")
            print(f"candle close → trade-closed alert with its PNG chart: p50 "
                  f"{pct(closed, 0.5):.1f} ms, p99 {pct(closed, 0.99):.1f} ms over "
                  f"{len(closed)} alerts (target p99 ≤ 300 ms)")
            stop.set()
            await asyncio.wait_for(service, timeout=30)


def chart_times(rounds: int = 5) -> None:
    """Rendering alone: a year of 1h (three charts) and the alert charts, best and median."""
    import time

    from bench.common import SHARED_DATA
    from data.loader import CandleLoader
    from engine.backtest import BacktestConfig, run_backtest
    from engine.backtest_charts import draw_backtest_charts
    from engine.backtest_request import date_range
    from engine.charts import render_position_chart, render_trade_chart
    from engine.registry import build_strategy
    from engine.types import Position

    strategy = build_strategy("sma_cross", {"fast": "10", "slow": "50"}, "1h")
    lo, hi = date_range("2019-01-01", "2019-12-31")
    candles, _ = CandleLoader(SHARED_DATA).load("binance", "BTC/USDT", "1h",
                                                lo - 50 * 3_600_000, hi)
    result = run_backtest(strategy, candles, BacktestConfig("BTC/USDT", "1h", trade_start=lo))
    trade = result.trades[len(result.trades) // 2]
    window = result.candles.take(slice(-60, None))
    position = Position(1, "BTC/USDT", "long", 1, 0.1, float(window.close[-1]),
                        int(window.timestamp[-1]), 1.0, float(window.close[-1]) * 0.98,
                        float(window.close[-1]) * 1.03)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for label, job in (
                ("1-year 1h backtest: price + equity + monthly charts",
                 lambda: draw_backtest_charts(result, strategy, out)),
                ("trade-closed alert chart",
                 lambda: render_trade_chart(result.candles, trade, out / "t.png", title="x")),
                ("trade-opened alert chart",
                 lambda: render_position_chart(window, position, out / "p.png", title="x"))):
            job()  # warm: fonts and caches
            took = []
            for _ in range(rounds):
                started = time.perf_counter()
                job()
                took.append((time.perf_counter() - started) * 1000)
            print(f"render {label}: median {statistics.median(took):.0f} ms, best "
                  f"{min(took):.0f} ms over {rounds} rounds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backtests", type=int, default=5)
    parser.add_argument("--alerts", type=int, default=100)
    parser.add_argument("--charts-only", action="store_true",
                        help="only time the chart rendering (no stand-ins)")
    args = parser.parse_args()
    chart_times()
    if not args.charts_only:
        asyncio.run(measure(args.backtests, args.alerts))


if __name__ == "__main__":
    main()
