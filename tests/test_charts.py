"""Charts: the pure helpers (aggregation, bar lookup, drawdown, downsampling) and PNG output."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from data.frames import OHLCV
from engine.charts import (
    aggregate_bars,
    drawdown_pct,
    locate_bars,
    max_drawdown,
    minmax_indices,
    render_equity_chart,
    render_price_chart,
    render_trade_chart,
    trade_window,
)
from engine.types import Position, Trade
from tests.helpers import SAMPLE_DATA

DATA = SAMPLE_DATA
H = 3_600_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def candles() -> OHLCV:
    path = DATA / "binance_BTC-USDT_1h.parquet"
    return OHLCV.from_frame(pd.read_parquet(path))


def _first(mask: np.ndarray) -> int:
    hits = np.flatnonzero(mask)
    assert hits.size, "sample data never reached the level"
    return int(hits[0])


def _trades(c: OHLCV, start: int) -> list[Trade]:
    """A long won at take-profit, a short lost at stop-loss and a signal exit, from real data.

    Entries fill at a candle's close (time = close time); level exits at the open time of the
    first candle touching the level; signal exits at a candle's close.
    """
    ts = c.timestamp
    i = start
    entry = float(c.close[i])
    tp = entry * 1.02
    j = i + 1 + _first(c.high[i + 1:] >= tp)
    long_win = Trade(1, "BTC/USDT", "long", 0.5, int(ts[i] + H), entry, int(ts[j]), tp,
                     (tp - entry) * 0.5 - 2.0, 1.0, 1.0, "take_profit", entry * 0.98, tp)
    i = j + 5
    entry = float(c.close[i])
    sl = entry * 1.015
    j = i + 1 + _first(c.high[i + 1:] >= sl)
    short_loss = Trade(2, "BTC/USDT", "short", 0.5, int(ts[i] + H), entry, int(ts[j]), sl,
                       (entry - sl) * 0.5 - 2.0, 1.0, 1.0, "stop_loss", sl, entry * 0.97)
    i = j + 3
    entry, exit_ = float(c.close[i]), float(c.close[i + 12])
    signal = Trade(3, "BTC/USDT", "long", 0.5, int(ts[i] + H), entry, int(ts[i + 12] + H), exit_,
                   (exit_ - entry) * 0.5 - 2.0, 1.0, 1.0, "signal", entry * 0.95, math.nan)
    return [long_win, short_loss, signal]


def _png_shape(path: Path) -> tuple[int, ...]:
    assert path.read_bytes()[:8] == PNG_MAGIC
    return mpimg.imread(path).shape


# ---- pure helpers ----------------------------------------------------------------------------
def _tiny() -> OHLCV:
    ts = np.arange(10, dtype=np.int64) * H  # 1970-01-01 00:00 … 09:00, epoch-aligned
    o = np.array([10, 11, 12, 13, 14, 15, 16, 17, 18, 19], dtype=np.float64)
    c = np.array([11, 10, 14, 11, 15, 16, 13, 21, 18.5, 18.5])
    h = np.array([11.5, 14, 14.25, 13.5, 15.5, 23, 16.25, 21.5, 27.5, 19.5])
    low = np.array([9.5, 9.75, 8, 10.5, 13.5, 14.75, 7, 16.5, 17.5, 13.5])
    return OHLCV(ts, o, h, low, c, np.ones(10))


def test_aggregate_bars_exact_ohlc() -> None:
    bars = aggregate_bars(_tiny(), max_bars=3, interval_ms=H)
    assert len(bars) <= 3
    assert bars.width_ms == 4 * H and bars.source_ms == H and bars.aggregated
    np.testing.assert_array_equal(bars.start, [0, 4 * H, 8 * H])
    np.testing.assert_array_equal(bars.end, [4 * H, 8 * H, 12 * H])
    np.testing.assert_array_equal(bars.open, [10, 14, 18])
    np.testing.assert_array_equal(bars.high, [14.25, 23.0, 27.5])
    np.testing.assert_array_equal(bars.low, [8.0, 7.0, 13.5])
    np.testing.assert_array_equal(bars.close, [11.0, 21.0, 18.5])


def test_aggregate_bars_small_input_is_unchanged() -> None:
    tiny = _tiny()
    bars = aggregate_bars(tiny, max_bars=10, interval_ms=H)
    assert not bars.aggregated
    np.testing.assert_array_equal(bars.start, tiny.timestamp)
    np.testing.assert_array_equal(bars.end, tiny.timestamp + H)
    np.testing.assert_array_equal(bars.high, tiny.high)
    with pytest.raises(ValueError):
        aggregate_bars(tiny, max_bars=0, interval_ms=H)


def test_aggregate_bars_real_data(candles: OHLCV) -> None:
    for max_bars in (600, 97, 5, 1):
        bars = aggregate_bars(candles, max_bars, H)
        assert 1 <= len(bars) <= max_bars and bars.width_ms % H == 0
        assert bars.open[0] == candles.open[0] and bars.close[-1] == candles.close[-1]
        assert bars.high.max() == candles.high.max() and bars.low.min() == candles.low.min()
        assert np.all(np.diff(bars.start) > 0) and np.all(bars.end - bars.start == bars.width_ms)
        owner = locate_bars(bars, candles.timestamp)  # every candle lies inside its bar
        assert np.all(owner >= 0) and np.all(np.diff(owner) >= 0)


def test_locate_bars_tiny() -> None:
    bars = aggregate_bars(_tiny(), max_bars=3, interval_ms=H)
    times = [-1, 0, 4 * H - 1, 4 * H, 9 * H + 30 * 60_000, 12 * H, 12 * H + 1]
    np.testing.assert_array_equal(locate_bars(bars, times), [-1, 0, 0, 1, 2, 2, -1])


def test_locate_bars_puts_entries_in_their_bar(candles: OHLCV) -> None:
    window = candles.take(slice(2000, 10_760))
    trades = _trades(window, 300)
    for max_bars in (600, 50):
        bars = aggregate_bars(window, max_bars, H)
        for t in trades:
            for when in (t.entry_time, t.exit_time):
                i = int(locate_bars(bars, [when])[0])
                assert bars.start[i] <= when < bars.end[i]


def test_drawdown_exact() -> None:
    np.testing.assert_array_equal(drawdown_pct(np.array([100.0, 120, 90, 130])),
                                  [0.0, 0.0, -25.0, 0.0])
    assert max_drawdown(np.array([100.0, 120, 90, 130])) == (2, -25.0)
    assert max_drawdown(np.array([1.0, 2, 3])) == (0, 0.0)
    np.testing.assert_allclose(drawdown_pct(np.array([50.0, 40, 45, 60, 30])),
                               [0, -20, -10, 0, -50])


def test_minmax_indices_keeps_extremes() -> None:
    rng = np.random.default_rng(7)
    values = np.cumsum(rng.normal(0, 1, 100_000))
    values[54_321] += 1_000.0
    values[77_777] -= 1_000.0
    idx = minmax_indices(values, 2_000)
    assert len(idx) <= 2_000
    assert np.all(np.diff(idx) > 0)
    assert {0, 54_321, 77_777, 99_999} <= set(idx.tolist())
    np.testing.assert_array_equal(minmax_indices(values[:50], 2_000), np.arange(50))
    dd = drawdown_pct(values + 5_000)
    kept = minmax_indices(dd, 500)
    assert dd[kept].min() == dd.min()


def test_trade_window(candles: OHLCV) -> None:
    trade = _trades(candles, 5000)[0]
    window = trade_window(candles, trade, 10)
    assert window.timestamp[0] == trade.entry_time - 10 * H  # entry candle's open - 10 bars
    assert window.timestamp[-1] == trade.exit_time + 10 * H


# ---- rendering -------------------------------------------------------------------------------
def test_price_chart_png(candles: OHLCV, tmp_path: Path) -> None:
    trades = _trades(candles, 4020)
    end = int(np.searchsorted(candles.timestamp, trades[-1].exit_time)) + 40
    window = candles.take(slice(4000, end))
    pos = Position(9, "BTC/USDT", "short", -1, 0.5, float(window.close[-20]),
                   int(window.timestamp[-20] + H), 1.0, float(window.close[-20]) * 1.03, math.nan)
    out = render_price_chart(window, trades, tmp_path / "a" / "price.png", title="BTC/USDT 1h",
                             timeframe="1h", open_positions=[pos])
    assert out == tmp_path / "a" / "price.png"
    assert _png_shape(out)[1] == 800
    cut = int(np.searchsorted(candles.timestamp, trades[0].entry_time)) + 3  # trade 1 clipped
    clipped = render_price_chart(candles.take(slice(cut, end)), trades, tmp_path / "cut.png",
                                 title="clipped", timeframe="1h")
    assert _png_shape(clipped)[1] == 800


def test_price_chart_aggregated_and_deterministic_across_threads(candles: OHLCV,
                                                                 tmp_path: Path) -> None:
    trades = _trades(candles, 100) + _trades(candles, 15_000)

    def render(k: int) -> bytes:
        return render_price_chart(candles, trades, tmp_path / f"p{k}.png", title="all",
                                  timeframe="1h", max_bars=300).read_bytes()

    with ThreadPoolExecutor(2) as pool:
        images = list(pool.map(render, range(2)))
    assert images[0] == images[1] == render(2)
    assert _png_shape(tmp_path / "p0.png")[1] == 800


def test_price_chart_empty(tmp_path: Path) -> None:
    out = render_price_chart(OHLCV.empty(), [], tmp_path / "empty.png", title="none",
                             timeframe="1h")
    assert _png_shape(out)[1] == 800


def test_equity_chart_png(candles: OHLCV, tmp_path: Path) -> None:
    window = candles.take(slice(-8760, None))
    equity = 10_000.0 * window.close / window.close[0] * 0.5 + 5_000.0
    out = render_equity_chart(window.timestamp, equity, tmp_path / "eq" / "equity.png",
                              title="equity", starting_balance=10_000.0,
                              benchmark=window.close, quote="USDT")
    assert _png_shape(out) == (640, 800, 4)
    flat = render_equity_chart(window.timestamp[:3], np.array([1.0, 2.0, 3.0]),
                               tmp_path / "flat.png", title="up only", starting_balance=1.0)
    assert _png_shape(flat) == (640, 800, 4)
    with pytest.raises(ValueError):
        render_equity_chart(window.timestamp, equity[:-1], tmp_path / "bad.png", title="x",
                            starting_balance=1.0)


def test_trade_charts_png(candles: OHLCV, tmp_path: Path) -> None:
    for trade in _trades(candles, 7000):
        out = render_trade_chart(candles, trade, tmp_path / f"trade_{trade.id}.png",
                                 title=f"#{trade.id} BTC/USDT 1h")
        assert _png_shape(out) == (600, 800, 4)
    long_hold = Trade(7, "BTC/USDT", "long", 0.1, int(candles.timestamp[5000]),
                      float(candles.close[4999]), int(candles.timestamp[6500]),
                      float(candles.open[6500]), 12.0, 0.5, 0.5, "end_of_data")
    out = render_trade_chart(candles, long_hold, tmp_path / "long.png", title="long hold")
    assert _png_shape(out) == (600, 800, 4)
