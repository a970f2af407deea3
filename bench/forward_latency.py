"""Forward-run latency and memory against the local exchange stand-in.

Usage: python bench/forward_latency.py [--trades 300] [--runs 1 20]

1. Latency: one run in this process (stand-in on 127.0.0.1, Bybit v5 protocol, SQLite on disk)
   with a strategy that opens a position on one closed candle and closes it on the next, on top
   of 5,000 candles of real BTC/USDT 1m history and an SMA(100) recomputed on every candle.
   Measured: from the confirmed candle message leaving the stand-in (``perf_counter`` right
   after the websocket send) to the ``TradeOpened`` event reaching a bus subscriber, i.e.
   parsing, aggregation, indicators, the core step, the SQLite commit and the publish.
   Candles are paced (the next is sent once the previous one was handled), as live 1m candles
   arrive a minute apart.
2. Memory: a child process (``--child``) runs the headless engine exactly as ``paperbot
   forward`` does, starts N runs (the four bundled strategies with default parameters, on
   BTC/USDT and ETH/USDT, warm-up history fetched over REST) and processes four hours of live
   candles (1m, 15m, 1h, 4h streams), then reports its resident set size (VmRSS, VmHWM).
   ``--mix defaults`` runs each strategy at its default timeframe (1h, 1h, 4h, 15m);
   ``--mix 1m`` runs them all on 1m, the heaviest case; ``--mix perp`` runs them and
   ``oi_divergence`` on the perpetuals BTC/USDT:USDT and ETH/USDT:USDT at leverage 3, with the
   ticker stream on (open interest and funding of the warm-up fetched over REST, then a ticker
   delta at every candle close, docs/perpetuals.md).
3. Perpetual latency (``--perp-trades``, 0 to skip): the same measurement as 1 on
   BTC/USDT:USDT at leverage 5, the ticker stream on: each candle also reads the open interest
   and funding known at its close, stores them and books funding.
Targets: p99 ≤ 50 ms; RSS ≤ 150 MB with 20 spot runs, ≤ 160 MB with 20 perpetual runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED_DATA, proc_status
from data.ohlcv import OHLCV

FLIP = textwrap.dedent('''
    from engine.indicators import sma
    from engine.strategy import Strategy
    from engine.types import Signal

    class Flip(Strategy):
        """Long on one candle, flat on the next (a trade every two candles)."""
        timeframes = ["1m"]

        def warmup_candles(self):
            return 5000

        def on_init(self, data):
            self.trend = self.indicator(sma, data.base.close, 100)

        def on_candle(self, data, portfolio):
            if portfolio.positions:
                return [Signal.close_all()]
            return [Signal.open_long(50, stop_loss=self.trend[-1] * 0.5)]
''')
#: Run mixes for the memory test: every bundled strategy at its default timeframe, or all at 1m
#: (mtf_trend at 1m keeps 24,480 candles of history for its 4h EMA: the heaviest case).
MIXES = {
    "defaults": [("sma_cross", "1h"), ("rsi_reversion", "1h"), ("donchian_breakout", "4h"),
                 ("mtf_trend", "15m")],
    "1m": [("sma_cross", "1m"), ("rsi_reversion", "1m"), ("donchian_breakout", "1m"),
           ("mtf_trend", "1m")],
}
MIXES["perp"] = [("oi_divergence", "1h"), *MIXES["defaults"]]
SYMBOLS = ("BTC/USDT", "ETH/USDT")
PERP_SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
#: RSS targets with 20 runs (MB): spot mixes, and the perpetual one
TARGETS = {"defaults": 150, "1m": 150, "perp": 160}
LIVE_FROM = 30 * 1440  # minute index where live candles start: 30 days of history before it
LIVE_MINUTES = 240  # live candles: 240 1m, 16 15m, 4 1h, 1 4h per symbol


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process, MiB."""
    field = proc_status()
    return field["VmRSS"] / 1024, field["VmHWM"] / 1024


def settings(folder: Path, rest: str, ws: str):
    from engine.settings import load_settings

    strategies = folder / "strategies"
    strategies.mkdir(parents=True, exist_ok=True)
    (strategies / "flip.py").write_text(FLIP)
    return load_settings(db_path=folder / "runs.db", data_dir=folder / "cache",
                         strategy_dir=strategies, live_exchange="bybit", exchange_rest_url=rest,
                         exchange_ws_url=ws, log_level="WARNING")


def series(symbol: str, count: int, cursor: int):
    from tests.standins.exchange import CandleSeries

    name = f"binance_{symbol.replace('/', '-')}_1m.parquet"
    return CandleSeries.from_parquet(SHARED_DATA / name, symbol, "1m", count=count,
                                     cursor=cursor)


async def latency(trades: int, perp: bool = False) -> list[float]:
    """Candle → ``TradeOpened`` latencies (ms) of ``trades`` trades; ``perp``: on
    BTC/USDT:USDT at leverage 5 with the ticker stream on."""
    from engine.events import TradeClosed, TradeOpened
    from engine.forward.engine import RunSpec
    from engine.runtime import Runtime
    from tests.standins.exchange import ExchangeStandin

    symbol, leverage = ("BTC/USDT:USDT", 5.0) if perp else ("BTC/USDT", None)
    with tempfile.TemporaryDirectory() as tmp:
        async with ExchangeStandin([series("BTC/USDT", 6000 + 2 * trades, 5100)]) as ex, \
                Runtime(settings(Path(tmp), ex.rest_url, ex.ws_url("bybit"))) as rt:
            events = rt.bus.subscribe()
            record = await rt.service.start_run(RunSpec("flip", symbol, timeframe="1m",
                                                        leverage=leverage))
            await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
            if perp:
                await ex.wait_for_subscription("bybit", "tickers.BTCUSDT")
            samples = []
            for _ in range(2 * trades):
                await ex.emit_candle("BTC/USDT", "1m")
                sent = ex.sent_confirmed[-1].perf
                # every candle yields one trade event: an open or a close
                event = await asyncio.wait_for(events.get(), timeout=5)
                while not isinstance(event, TradeOpened | TradeClosed):
                    event = await asyncio.wait_for(events.get(), timeout=5)
                if isinstance(event, TradeOpened):
                    samples.append((time.perf_counter() - sent) * 1000)
            if perp:  # the values came from the stream, not from REST
                book = rt.engine.runs[record.id].perp.book
                assert book is not None and book.messages >= 2 * trades, "no ticker stream"
    return samples


async def child(runs: int, mix: str, rest: str, ws: str, folder: Path,
                finals: dict[str, int]) -> dict:
    from engine.forward.engine import RunSpec
    from engine.runtime import Runtime

    perp = mix == "perp"
    symbols = PERP_SYMBOLS if perp else SYMBOLS
    async with Runtime(settings(folder, rest, ws)) as rt:
        for k in range(runs):
            name, timeframe = MIXES[mix][k % len(MIXES[mix])]
            symbol = symbols[(k // len(MIXES[mix])) % len(symbols)]
            await rt.service.start_run(RunSpec(name, symbol, timeframe=timeframe,
                                               leverage=3.0 if perp else None))
        print("READY", flush=True)
        deadline = time.monotonic() + 120
        while any(r.last_candle_ts != finals[r.record.timeframe]
                  for r in rt.engine.runs.values()):
            if time.monotonic() > deadline:
                raise SystemExit("child: candles did not arrive")
            await asyncio.sleep(0.05)
        current, peak = rss_mb()
        books = {id(r.perp.book): r.perp.book for r in rt.engine.runs.values()
                 if r.perp is not None and r.perp.book is not None}
        return {"runs": runs, "mix": mix, "rss_mb": round(current, 1),
                "peak_rss_mb": round(peak, 1),
                "ticker_messages": sum(b.messages for b in books.values()),
                "pandas": "pandas" in sys.modules}


def market(symbol: str):
    """1m candles of ``symbol`` and 15m/1h/4h series built from them, cursors aligned."""
    from data.resample import resample
    from tests.standins.exchange import CandleSeries

    minutes = series(symbol, LIVE_FROM + 2 * LIVE_MINUTES, LIVE_FROM)
    ohlcv = OHLCV(minutes.ts, minutes.open, minutes.high, minutes.low, minutes.close,
                  minutes.volume)
    out = {"1m": minutes}
    for tf, ratio in (("15m", 15), ("1h", 60), ("4h", 240)):
        bins = resample(ohlcv, "1m", tf)
        out[tf] = CandleSeries.from_columns(symbol, tf, {c: getattr(bins, c) for c in (
            "timestamp", "open", "high", "low", "close", "volume")}, cursor=LIVE_FROM // ratio)
    return out


async def memory(runs: int, mix: str) -> dict:
    from tests.standins.exchange import ExchangeStandin

    markets = {symbol: market(symbol) for symbol in SYMBOLS}
    ratios = {"1m": 1, "15m": 15, "1h": 60, "4h": 240}
    finals = {tf: int(markets["BTC/USDT"][tf].ts[(LIVE_FROM + LIVE_MINUTES) // r - 1])
              for tf, r in ratios.items()}
    with tempfile.TemporaryDirectory() as tmp:
        async with ExchangeStandin([s for m in markets.values() for s in m.values()]) as ex:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--child", str(runs), "--mix", mix, "--rest",
                ex.rest_url, "--ws", ex.ws_url("bybit"), "--folder", tmp, "--finals",
                json.dumps(finals), stdout=subprocess.PIPE)
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=300)
            assert line.strip() == b"READY", line
            for minute in range(LIVE_FROM, LIVE_FROM + LIVE_MINUTES):
                for symbol in SYMBOLS:
                    for tf, ratio in ratios.items():
                        if (minute + 1) % ratio == 0:  # that candle closes with this minute
                            await ex.emit_candle(symbol, tf)
                await asyncio.sleep(0.002)
            out = await asyncio.wait_for(proc.stdout.read(), timeout=300)
            await proc.wait()
    return json.loads(out.decode().strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=300)
    parser.add_argument("--perp-trades", type=int, default=300)
    parser.add_argument("--runs", type=int, nargs="*", default=[1, 20])
    parser.add_argument("--mix", choices=sorted(MIXES), nargs="*",
                        default=["defaults", "1m", "perp"])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rest", help=argparse.SUPPRESS)
    parser.add_argument("--ws", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--finals", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        result = asyncio.run(child(args.child, args.mix[0], args.rest, args.ws,
                                   Path(args.folder), json.loads(args.finals)))
        print(json.dumps(result), flush=True)
        return

    for what, trades, perp in (("spot", args.trades, False),
                               ("perpetual, ticker stream on", args.perp_trades, True)):
        if trades <= 0:
            continue
        samples = sorted(asyncio.run(latency(trades, perp)))
        p50 = statistics.median(samples)
        p99 = samples[min(len(samples) - 1, round(0.99 * len(samples)) - 1)]
        print(f"confirmed candle → TradeOpened ({what}): {len(samples)} trades, p50 "
              f"{p50:.2f} ms, p99 {p99:.2f} ms, max {samples[-1]:.2f} ms (target p99 ≤ 50 ms)")
    for mix in args.mix:
        for runs in args.runs:
            result = asyncio.run(memory(runs, mix))
            label = "perpetual runs, tickers on" if mix == "perp" else f"runs ({mix} timeframes)"
            extra = (f", {result['ticker_messages']:,} ticker messages"
                     if mix == "perp" else "") + (", pandas imported!" if result["pandas"]
                                                  else "")
            print(f"engine process, {result['runs']:>2} {label}: RSS {result['rss_mb']} MB, "
                  f"peak {result['peak_rss_mb']} MB{extra} (target ≤ {TARGETS[mix]} MB with "
                  "20 runs)")


if __name__ == "__main__":
    main()
