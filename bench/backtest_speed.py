"""Backtest runner speed on a year of real 1m candles.

Usage: python bench/backtest_speed.py [--repeat 3]

Builds 525,600 consecutive 1m candles by joining the real BTC/USDT 1m windows under
../shared/data end to end (timestamps shifted to be contiguous, prices untouched; see
bench/common.py) and times ``engine.backtest.run_backtest`` alone (data loading excluded):

1. sma_cross (fast 20, slow 100) on base timeframe 1m with stop-loss 1 % and take-profit 2 %;
2. the same strategy on 1h candles resampled from those minutes, with tighter levels (stop-loss
   0.5 %, take-profit 0.75 %) so that many candles hold both, resolved by drilling down into
   the 1m candles;
3. position management on the 1m year: sma_cross with a 1 % trailing stop and two scale-out
   levels (+1 %, +2 %, a third each) before a +3 % take-profit — the engine's managed path —
   and the bundled trend_scaler (risk-based size, three scale-outs, break-even moves, a time
   exit; its own indicators cost more).

Prints candles/second, trades, drill-down counts and memory: the resident set before the
run (interpreter, numpy, pyarrow and the 25 MB of candles), the peak of the whole process after
the 525,600-candle run and what the run itself added. Targets on the 2-core development
machine: plain sma_cross >= 1,000,000 candles/s (525,600 1m candles in <= 1.0 s); the
trailing-stop and scale-out cases >= 700,000 candles/s; a peak of at most 250 MB, since every
worker of an optimisation study holds such a run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import joined_minutes, peak_rss_mb, rss_mb
from data.resample import resample
from engine.backtest import BacktestConfig, run_backtest
from engine.fills import FillModel
from engine.types import Signal
from strategies.sma_cross import SmaCross
from strategies.trend_scaler import TrendScaler

PARAMS = {"fast": 20, "slow": 100, "stop_loss_pct": 1.0, "take_profit_pct": 2.0}
HOURLY_PARAMS = {"fast": 20, "slow": 100, "stop_loss_pct": 0.5, "take_profit_pct": 0.75}
class TrailScale(SmaCross):
    """sma_cross entries with a trailing stop and scale-outs (the engine's managed path)."""

    def on_candle(self, data, portfolio):
        signals = super().on_candle(data, portfolio)
        if signals and signals[0].action == "open_long":
            close = data.base.close[-1]
            return [Signal.open_long(95, trailing_stop_pct=1.0, take_profit=close * 1.03,
                                     take_profits=[(close * 1.01, 1 / 3),
                                                   (close * 1.02, 1 / 3)])]
        return signals


SCALER = {"fast": 50, "slow": 200, "breakout": 120, "max_hold": 240}
FILLS = FillModel(taker_fee_bps=10, maker_fee_bps=2, slippage_bps=5)


def best_of(repeat: int, job) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        result = None  # the previous run's result goes first: one result alive, as in use
        started = time.perf_counter()
        result = job()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; best is shown")
    args = parser.parse_args()

    minutes = joined_minutes()
    print(f"candles: {len(minutes):,} real BTC/USDT 1m candles joined end to end "
          "(timestamps shifted to be contiguous)")
    before = rss_mb()

    seconds, result = best_of(args.repeat, lambda: run_backtest(
        SmaCross(PARAMS, timeframe="1m"), minutes,
        BacktestConfig("BTC/USDT", "1m", fills=FILLS)))
    print(f"1m base, SL/TP on : {seconds:.3f} s  {len(minutes) / seconds:,.0f} candles/s  "
          f"trades {len(result.trades):,}  final equity {result.final_equity:,.2f}")
    peak = peak_rss_mb()
    print(f"memory            : {before:.0f} MiB before the run, peak {peak:.0f} MiB "
          f"(target <= 250), the run added {peak - before:.0f} MiB")
    del result

    for label, strategy in (
            ("1m, trailing stop", lambda: SmaCross({**PARAMS, "trailing_stop_pct": 1.0},
                                                   timeframe="1m")),
            ("1m, trail+scale  ", lambda: TrailScale({"fast": 20, "slow": 100},
                                                     timeframe="1m")),
            ("1m, trend_scaler ", lambda: TrendScaler(SCALER, timeframe="1m"))):
        seconds, result = best_of(args.repeat, lambda s=strategy: run_backtest(
            s(), minutes, BacktestConfig("BTC/USDT", "1m", fills=FILLS)))
        print(f"{label} : {seconds:.3f} s  {len(minutes) / seconds:,.0f} candles/s  "
              f"trades {len(result.trades):,}  exits {len(result.exits):,}  "
              f"final equity {result.final_equity:,.2f}")

    hours = resample(minutes, "1m", "1h")

    def lower(timeframe, start, end):
        return minutes.between(start, end) if timeframe == "1m" else None

    seconds, result = best_of(args.repeat, lambda: run_backtest(
        SmaCross(HOURLY_PARAMS, timeframe="1h"), hours,
        BacktestConfig("BTC/USDT", "1h", fills=FILLS), lower))
    counts = result.exit_counts
    print(f"1h base, 1m drill : {seconds:.3f} s  {len(hours):,} 1h candles, "
          f"{len(hours) / seconds:,.0f} candles/s  trades {len(result.trades):,}  "
          f"drill-down {counts.drill_down}, conservative {counts.conservative}")
    print(f"peak RSS: {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
