"""Phone charts: theme colours, the indicators each bundled strategy declares, legible text at
400 px wide, the trades' PnL panel for crowded spans, the monthly heatmap."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.colors import to_hex, to_rgb

from data.loader import CandleLoader
from data.timeframes import timeframe_ms
from engine.backtest import BacktestConfig, BacktestResult, run_backtest
from engine.backtest_request import date_range
from engine.charts import (
    THEMES,
    build_equity_figure,
    build_heatmap_figure,
    build_position_figure,
    build_price_figure,
    build_trade_figure,
    min_font_px,
    render_price_chart,
)
from engine.charts.heatmap import cell_text
from engine.plots import plot_lines
from engine.registry import build_strategy
from engine.stats import monthly_returns
from engine.types import Position
from tests.helpers import SAMPLE_DATA

#: what Discord shows an embed image at on a phone, and the smallest text we allow there
PHONE_PX, MIN_PX = 400, 10.0

BUNDLED = {  # strategy: (timeframe, start, end, params, the lines its chart must draw)
    "sma_cross": ("1h", "2019-03-01", "2019-04-30", {"fast": "10", "slow": "50"},
                  {"price": ["sma10", "sma50"]}),
    "rsi_reversion": ("1h", "2019-03-01", "2019-04-30", {},
                      {"rsi": ["rsi"]}),
    "donchian_breakout": ("4h", "2019-01-01", "2019-06-30", {},
                          {"price": ["upper", "lower", "exit_upper", "exit_lower"]}),
    "mtf_trend": ("15m", "2025-06-01", "2025-06-10", {},
                  {"price": ["ema9", "ema21", "trend_ema"]}),
}


def backtest(name: str) -> tuple[BacktestResult, object]:
    tf, start, end, params, _ = BUNDLED[name]
    strategy = build_strategy(name, params, tf)
    lo, hi = date_range(start, end)
    step = timeframe_ms(tf)
    candles, _ = CandleLoader(SAMPLE_DATA).load("binance", "BTC/USDT", tf,
                                                lo - strategy.warmup_candles() * step, hi)
    config = BacktestConfig(symbol="BTC/USDT", timeframe=tf, trade_start=lo,
                            exchange="binance")
    return run_backtest(strategy, candles, config), strategy


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[BacktestResult, object]]:
    return {name: backtest(name) for name in BUNDLED}


def drawn(fig) -> object:
    fig.canvas.draw()
    return fig


@pytest.mark.parametrize("name", list(BUNDLED))
def test_each_bundled_strategy_draws_its_indicators_legibly(runs, name: str) -> None:
    result, strategy = runs[name]
    lines = plot_lines(strategy, result.warmup, len(result.candles))
    fig = drawn(build_price_figure(result.candles, result.trades, title=name,
                                   timeframe=result.config.timeframe, lines=lines,
                                   symbol="BTC/USDT"))
    expected = BUNDLED[name][4]
    theme = THEMES["dark"]
    palette = [to_hex(c) for c in theme.palette]
    for panel, names in expected.items():
        ax = fig.axes[0] if panel == "price" else fig.axes[1]
        got = [ln for ln in ax.get_lines() if ln.get_label() in names]
        assert [ln.get_label() for ln in got] == names
        for line in got:  # each a real line with values, in a palette colour
            assert np.isfinite(line.get_ydata()).sum() > 0.8 * len(line.get_ydata())
            assert to_hex(line.get_color()) in palette
        legend = ax.get_legend()
        assert legend is not None and set(names) <= {t.get_text() for t in legend.get_texts()}
    if name == "rsi_reversion":  # the oversold/exit/overbought guides of its panel
        levels = sorted({ln.get_ydata()[0] for ln in fig.axes[1].get_lines()
                         if ln.get_label().startswith("_")})
        assert levels == [30.0, 50.0, 70.0]
    assert min_font_px(fig, PHONE_PX) >= MIN_PX
    assert fig.axes[-1].texts[0].get_text() == "volume (BTC)"


def test_theme_colours_reach_the_pixels(runs, tmp_path: Path) -> None:
    result, _ = runs["sma_cross"]
    for name in ("dark", "light"):
        out = render_price_chart(result.candles, result.trades, tmp_path / f"{name}.png",
                                 title="sma_cross", timeframe="1h", theme=name)
        image = mpimg.imread(out)
        assert image.shape[1] == 800  # shown at 400 px: 2 device pixels per point
        np.testing.assert_allclose(image[2, 2, :3], to_rgb(THEMES[name].background),
                                   atol=1 / 255)
    assert THEMES["dark"].background == "#2b2d31"  # Discord's dark embed background
    assert THEMES["dark"].short != THEMES["dark"].loss  # an opened short is not a loss


def test_few_trades_are_marked_by_outcome_many_become_a_pnl_panel(runs) -> None:
    result, _ = runs["donchian_breakout"]
    theme = THEMES["dark"]
    few = result.trades[:6]
    fig = drawn(build_price_figure(result.candles, few, title="few", timeframe="4h",
                                   symbol="BTC/USDT"))
    exits = {to_hex(c.get_facecolor()[0]) for c in fig.axes[0].collections
             if getattr(c, "get_paths", None) and len(c.get_offsets()) and
             c.get_paths()[0].vertices.shape[0] > 4}
    wins = sum(t.pnl > 0 for t in few)
    assert (to_hex(theme.win) in exits) == (wins > 0)
    assert (to_hex(theme.loss) in exits) == (wins < len(few))
    subtitle = fig.texts[1].get_text()
    assert subtitle.endswith("· 6 trades") and "UTC" in subtitle
    crowded = result.trades * 8  # more than MAX_MARKED_TRADES
    fig = drawn(build_price_figure(result.candles, crowded, title="many", timeframe="4h",
                                   symbol="BTC/USDT"))
    assert fig.texts[1].get_text().endswith(f"{len(crowded):,} trades (PnL panel)")
    panel = fig.axes[1]
    assert panel.texts[0].get_text() == "trades' PnL, cumulative (USDT)"
    step = panel.get_lines()[0]
    assert step.get_ydata()[-1] == pytest.approx(sum(t.pnl for t in crowded))
    assert min_font_px(fig, PHONE_PX) >= MIN_PX


def test_equity_heatmap_and_alert_charts_are_legible(runs) -> None:
    result, _ = runs["sma_cross"]
    months = monthly_returns(result.candles.timestamp, result.equity, "1h", 10_000.0)
    position = Position(1, "BTC/USDT", "short", -1, 0.1, float(result.candles.close[-30]),
                        int(result.candles.timestamp[-30]), 1.0,
                        float(result.candles.close[-30]) * 1.02, math.nan)
    figures = {
        "equity": build_equity_figure(result.candles.timestamp, result.equity, title="eq",
                                      starting_balance=10_000.0,
                                      benchmark=result.candles.close, quote="USDT"),
        "heatmap": build_heatmap_figure(months, title="monthly"),
        "trade": build_trade_figure(result.candles, result.trades[0], title="#1 BTC/USDT 1h"),
        "position": build_position_figure(result.candles.take(slice(-80, None)), position,
                                          title="#1 open", mark=float(result.candles.close[-1])),
    }
    for name, fig in figures.items():
        assert min_font_px(drawn(fig), PHONE_PX) >= MIN_PX, name
        assert to_hex(fig.get_facecolor()) == THEMES["dark"].background
    texts = [t.get_text() for t in figures["heatmap"].axes[0].texts]
    assert texts == [cell_text(m.return_pct) for m in months]
    labels = [t.get_text() for t in figures["trade"].axes[0].texts]
    assert any(label.startswith("entry\n") for label in labels)
    assert figures["trade"].texts[1].get_text().startswith(result.trades[0].side.upper())
