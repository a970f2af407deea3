"""Charts of managed positions: the trailing stop's path, scale-out levels and parts taken."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D

from engine.charts import build_position_figure, build_trade_figure, render_position_chart
from engine.charts import trade as chart_trade
from engine.exits import trailing_levels
from engine.fills import FillModel
from engine.portfolio import Portfolio
from engine.store.level_moves import LevelStep
from engine.types import Signal
from tests.helpers import HOUR, T0, candles
from tests.test_position_management import run

ROWS = [(100, 100, 100, 100),
        (100, 104, 99, 103),    # best 104 → trail 98.8 from the next candle
        (103, 108, 102, 107),   # 105 and 108 fill, a third each; best 108 → 102.6
        (107, 110, 106, 109),   # best 110 → 104.5
        (109, 109, 104, 105),   # 104 <= 104.5: the trailing stop takes the rest
        (105, 105, 105, 105)]
LEVELS = [(105, 1 / 3), (108, 1 / 3)]


def texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_the_trailing_path_is_the_one_the_engine_used():
    r = run(ROWS, {0: [Signal.open_long(size=3, trailing_stop_pct=5, take_profits=LEVELS)]})
    [trade] = r.trades
    assert [(e.price, e.reason) for e in r.exits] == [
        (105, "take_profit"), (108, "take_profit"), (104.5, "trailing_stop")]
    bars = candles(ROWS)
    pf = Portfolio(10_000.0, "BTC/USDT")
    pos = pf.open("long", 3, trade.entry_price, 0.0, trade.entry_time, trailing_stop_pct=5)
    path = trailing_levels(pos, bars.timestamp, bars.high, bars.low)
    # the signal candle closes at T0 + 1h: the entry; then 95, 98.8, 102.6, 104.5 (hit)
    assert np.isnan(path[0])
    assert path[1:5] == pytest.approx([95.0, 98.8, 102.6, 104.5])
    assert path[4] == pytest.approx(trade.stop_loss) == pytest.approx(r.exits[-1].price)
    assert pos.trailing_stop == 95.0 and pos.best_price == trade.entry_price  # not changed

    # closed-trade chart: each part marked with its share, the exit line is the average
    fig = build_trade_figure(bars, trade, title="#1 BTC/USDT 1h", exits=r.exits)
    labels = texts(fig)
    assert labels.count("−33%") == 3
    assert any(t.startswith("avg exit\n") for t in labels)
    assert any(t == "trail\n104.50" for t in labels)
    [ax] = fig.axes
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    ys = sorted(float(off[1]) for c in dots for off in c.get_offsets())
    assert ys == pytest.approx([trade.entry_price, 104.5, 105.0, 108.0])  # entry and 3 parts


def test_an_open_position_shows_its_trail_pending_levels_and_parts_taken():
    rows = ROWS[:4]  # open: two parts taken, the trailing stop at 104.5 for the next candle
    r = run([*rows, (109, 109, 109, 109)],
            {0: [Signal.open_long(size=3, trailing_stop_pct=5,
                                  take_profits=[(105, 1 / 3), (108, 1 / 3), (120, 1 / 3)])]})
    assert [e.price for e in r.exits[:2]] == [105, 108]
    bars = candles(rows)
    pf = Portfolio(10_000.0, "BTC/USDT")
    pos = pf.open("long", 3, 100.0, 0.0, T0 + HOUR, trailing_stop_pct=5,
                  take_profits=[[120.0, 1 / 3]])
    pos.size, pos.trailing_stop, pos.best_price = 1.0, 104.5, 110.0
    fig = build_position_figure(bars, pos, title="#1 BTC/USDT 1h (open)", mark=109.0,
                                exits=r.exits[:2])
    [ax] = fig.axes
    labels = texts(fig)
    assert labels.count("−33%") == 2
    assert "TP1\n120.00" in labels and "trail\n104.50" in labels
    [step] = [ln for ln in ax.get_lines() if isinstance(ln, Line2D)
              and ln.get_drawstyle() == "steps-post"]
    assert np.asarray(step.get_ydata()[1:4], dtype=float) == pytest.approx([95.0, 98.8, 102.6])


def test_without_a_trailing_stop_or_parts_nothing_extra_is_drawn():
    r = run(ROWS, {0: [Signal.open_long(size=1, stop_loss=90, take_profit=108)]},
            fills=FillModel(10, 2, 0))
    [trade] = r.trades
    fig = build_trade_figure(candles(ROWS), trade, title="#1", exits=r.exits)
    labels = texts(fig)
    assert not any(t.startswith("−") for t in labels)
    assert any(t.startswith("exit\n") for t in labels) and any(t.startswith("SL\n") for t in
                                                                labels)


def test_moved_levels_are_drawn_as_steps():
    r = run(ROWS, {0: [Signal.open_long(size=1, stop_loss=90, take_profit=200)]})
    [trade] = r.trades
    steps = [LevelStep(trade.entry_time, 90.0, 200.0),      # opened
             LevelStep(T0 + 3 * HOUR, 100.0, 200.0),        # stop to break-even
             LevelStep(T0 + 4 * HOUR, 100.0, float("nan"))]  # target removed
    fig = build_trade_figure(candles(ROWS), trade, title="#1", exits=r.exits, steps=steps)
    [ax] = fig.axes
    paths = [ln for ln in ax.get_lines() if ln.get_drawstyle() == "steps-post"]
    assert len(paths) == 2
    stop, target = sorted(paths, key=lambda ln: np.nanmin(ln.get_ydata()))
    assert list(np.asarray(stop.get_ydata(), dtype=float)) == [90.0, 100.0, 100.0, 100.0]
    assert np.array_equal(np.asarray(target.get_ydata(), dtype=float),
                          [200.0, 200.0, np.nan, np.nan], equal_nan=True)
    # without a move, no path
    fig = build_trade_figure(candles(ROWS), trade, title="#1", exits=r.exits, steps=steps[:1])
    assert not [ln for ln in fig.axes[0].get_lines() if ln.get_drawstyle() == "steps-post"]


def test_the_position_chart_draws_moved_levels(tmp_path, monkeypatch):
    pf = Portfolio(10_000.0, "BTC/USDT")
    pos = pf.open("long", 1, 100.0, 0.0, T0 + HOUR, stop_loss=90.0, take_profit=200.0)
    steps = [LevelStep(T0 + HOUR, 90.0, 200.0),        # opened
             LevelStep(T0 + 3 * HOUR, 100.0, 200.0)]   # stop to break-even
    fig = build_position_figure(candles(ROWS), pos, title="#1 (open)", steps=steps)
    paths = [ln for ln in fig.axes[0].get_lines() if ln.get_drawstyle() == "steps-post"]
    [stop] = paths
    assert list(np.asarray(stop.get_ydata(), dtype=float)) == [90.0, 100.0, 100.0]
    # the PNG the Chart button sends is drawn with the same steps
    drawn = []

    def spy(*args, **kwargs):
        drawn.append(build_position_figure(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(chart_trade, "build_position_figure", spy)
    render_position_chart(candles(ROWS), pos, tmp_path / "p.png", title="#1 (open)",
                          steps=steps)
    assert [ln for ln in drawn[0].axes[0].get_lines()
            if ln.get_drawstyle() == "steps-post"] != []
