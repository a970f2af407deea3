"""Draw the PNGs the README shows, from the real candles of ../shared/data.

Usage: python docs/images/make_images.py [--data-dir ../shared/data]

Runs real backtests (the same job the bot and ``paperbot backtest`` run) and copies their
charts here; the trade and position charts are the alert charts of a real backtest trade.
Nothing is drawn by hand: run it again after changing the charts and commit the PNGs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

SHOWN = [  # (file here, strategy, symbol, timeframe, start, end, params, theme, charts kept)
    ("backtest", "sma_cross", "BTC/USDT", "1h", "2019-01-01", "2019-12-31",
     {"fast": "10", "slow": "50"}, "dark", ("price", "equity", "monthly")),
    ("rsi", "rsi_reversion", "BTC/USDT", "1h", "2019-05-01", "2019-06-15", {}, "dark",
     ("price",)),
    ("mtf", "mtf_trend", "BTC/USDT", "15m", "2025-06-01", "2025-06-14", {}, "dark",
     ("price",)),
    ("light", "donchian_breakout", "BTC/USDT", "4h", "2018-01-01", "2019-12-31", {},
     "light", ("price",)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "PAPERBOT_SAMPLE_DATA", HERE.parents[2] / "shared" / "data")))
    args = parser.parse_args()

    from engine.backtest_job import run_backtest_job
    from engine.backtest_request import BacktestRequest
    from engine.charts import render_position_chart, render_trade_chart
    from engine.settings import Settings
    from engine.types import Position

    with tempfile.TemporaryDirectory() as tmp:
        for name, strategy, symbol, tf, start, end, params, theme, kept in SHOWN:
            settings = Settings(data_dir=args.data_dir, out_dir=Path(tmp), offline=True,
                                chart_theme=theme)
            report = run_backtest_job(BacktestRequest(strategy, symbol, tf, start=start,
                                                      end=end, params=params), settings)
            for kind, path in report.charts.items():
                if kind not in kept:
                    continue
                shutil.copyfile(path, HERE / f"{name}_{kind}.png")
                print(HERE / f"{name}_{kind}.png")
            if name == "mtf":
                result = report.result
                trade = max(result.trades, key=lambda t: t.pnl)
                render_trade_chart(result.candles, trade, HERE / "alert_closed.png",
                                   title=f"#{trade.id} {symbol} {tf} · {strategy}")
                entry = int(result.candles.timestamp.searchsorted(trade.entry_time))
                position = Position(trade.id, symbol, trade.side, 1 if trade.side == "long"
                                    else -1, trade.size, trade.entry_price, trade.entry_time,
                                    trade.entry_fee, trade.stop_loss, trade.take_profit)
                render_position_chart(result.candles.take(slice(max(0, entry - 80), entry)),
                                      position, HERE / "alert_opened.png",
                                      title=f"#{trade.id} {symbol} {tf} · {strategy}")
                print(HERE / "alert_closed.png", HERE / "alert_opened.png")


if __name__ == "__main__":
    main()
