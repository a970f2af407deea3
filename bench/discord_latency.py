"""Discord latencies of the whole service, against local stand-ins of Discord and the exchange.

Usage: python bench/discord_latency.py [--backtests 5] [--alerts 100]

Runs ``bot.app.serve`` exactly as ``python -m bot`` does (job worker process, SQLite, the real
discord.py client) against the Discord API stand-in of ``tests/standins`` and the exchange
stand-in, both on 127.0.0.1 in this process (one clock: CLOCK_MONOTONIC).

1. ``/backtest sma_cross BTC/USDT 1h 2019-01-01 2019-12-31`` (one year of real 1h candles): from
   the INTERACTION_CREATE dispatch to the stand-in receiving the message with the metrics
   embed and both PNG charts. Target ≤ 3 s.
2. Candle close → alert: from the confirmed kline message leaving the exchange stand-in to the
   stand-in Discord receiving the trade-opened embed (a strategy that opens on one candle and
   closes on the next). Target p99 ≤ 100 ms. Trade-closed alerts carry a PNG chart of the trade
   and are reported separately.
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
            await start.wait_done(lambda r: len(r.messages) == 2, timeout=60)
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
            print(f"candle close → trade-opened alert received: p50 {pct(opened, 0.5):.1f} ms, "
                  f"p99 {pct(opened, 0.99):.1f} ms over {len(opened)} alerts (target ≤ 100 ms)")
            print(f"candle close → trade-closed alert with its PNG chart: p50 "
                  f"{pct(closed, 0.5):.1f} ms, p99 {pct(closed, 0.99):.1f} ms")
            stop.set()
            await asyncio.wait_for(service, timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backtests", type=int, default=5)
    parser.add_argument("--alerts", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(measure(args.backtests, args.alerts))


if __name__ == "__main__":
    main()
