"""Cost of the automatic look-ahead check on top of a backtest, for the bundled strategies.

Usage: python bench/lookahead_cost.py [--repeat 7]

For each bundled strategy at its default timeframe, on every cached BTC/USDT candle of
``../shared/data`` at that timeframe (resampled from finer candles where needed), times
``run_backtest`` with and without ``lookahead=True`` (best of ``--repeat`` runs each,
alternating), and the same for sma_cross (SL 1 %, TP 2 %) on the 525,600 joined 1m candles of
bench/backtest_speed.py. The check alone is also timed on its own (it runs after the
candle loop, over the same market), which stays readable on a busy machine where two whole
backtests differ by more than the check costs. Target: at most +15 %.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED_DATA, joined_minutes
from data.loader import CandleLoader
from engine.backtest import BacktestConfig, run_backtest
from engine.market import MarketData
from engine.registry import discover
from engine.research.lookahead import check_indicators


def timed(make, candles, config, lookahead: bool) -> float:
    started = time.perf_counter()
    run_backtest(make(), candles, config, lookahead=lookahead)
    return time.perf_counter() - started


def check_alone(make, candles, config) -> float:
    """Time of ``check_indicators`` on a market set up as ``run_backtest`` does."""
    strategy = make()
    first = strategy.warmup_candles()
    market = MarketData(config.symbol, config.timeframe, candles, strategy.timeframes[1:])
    market.prepare_steps()
    market.advance(max(first - 1, 0))
    strategy.bind(market)
    started = time.perf_counter()
    check_indicators(market, first)
    return time.perf_counter() - started


def compare(title: str, make, candles, config, repeat: int) -> None:
    plain = checked = alone = float("inf")
    for _ in range(repeat):
        plain = min(plain, timed(make, candles, config, False))
        checked = min(checked, timed(make, candles, config, True))
        alone = min(alone, check_alone(make, candles, config))
    print(f"  {title:<30} {len(candles):>8,} candles  {plain * 1000:7.1f} ms -> "
          f"{checked * 1000:7.1f} ms ({(checked / plain - 1) * 100:+5.1f} %)  check alone "
          f"{alone * 1000:6.2f} ms = {alone / plain * 100:4.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    loader = CandleLoader(SHARED_DATA)
    print("backtest without -> with the automatic look-ahead check (best of "
          f"{args.repeat}; target <= +15 %)")
    for name, info in discover().items():
        tf = info.timeframes[0]
        candles, _ = loader.load("binance", "BTC/USDT", tf)
        compare(f"{name} {tf}", lambda info=info: info.cls(None), candles,
                BacktestConfig("BTC/USDT", tf), args.repeat)
    minutes = joined_minutes()
    sma = discover()["sma_cross"].cls
    compare("sma_cross 1m, SL/TP (a year)",
            lambda: sma({"stop_loss_pct": 1.0, "take_profit_pct": 2.0}, timeframe="1m"),
            minutes, BacktestConfig("BTC/USDT", "1m"), max(3, args.repeat // 2))


if __name__ == "__main__":
    main()
