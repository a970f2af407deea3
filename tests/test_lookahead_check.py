"""The automatic look-ahead check, the full truncation check, and what a strategy can reach."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from data.loader import CandleLoader
from engine.backtest import BacktestConfig, run_backtest
from engine.market import MarketData
from engine.registry import discover
from engine.research.lookahead import check_indicators, truncation_check
from engine.series import Clock, Column
from engine.strategy import Strategy
from tests.helpers import SAMPLE_DATA
from tests.research_helpers import LEAKY
from tests.standins.exchange_derivs import synthetic_perp


@pytest.fixture(scope="module")
def hours():
    candles, _ = CandleLoader(SAMPLE_DATA).load("binance", "BTC/USDT", "1h")
    return candles.take(slice(0, 3000))


def leaky_class(tmp_path):
    path = tmp_path / "leaky_strategy.py"
    path.write_text(LEAKY)
    spec = importlib.util.spec_from_file_location("leaky_strategy", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["leaky_strategy"] = module
    spec.loader.exec_module(module)
    return module.Leaky


def test_the_leaky_strategy_is_flagged_with_its_indicator(tmp_path, hours):
    result = run_backtest(leaky_class(tmp_path)(), hours, BacktestConfig("BTC/USDT", "1h"),
                          lookahead=True)
    assert result.metrics.total_return_pct > 1000  # the leak makes it look brilliant
    [finding] = result.lookahead
    assert finding.indicator == "next_close" and finding.timeframe == "1h"
    assert finding.ahead == 1  # it reads the next candle
    assert finding.first_time == finding.cut_time - 3_600_000  # the value just before the cut
    assert "indicator next_close (1h)" in finding.describe()
    assert "at least 1 candle ahead" in finding.describe()


class Centred(Strategy):
    """A centred 5-candle mean: looks 2 candles ahead."""

    name = "centred"
    timeframes = ["1h"]

    def on_init(self, data):
        self.mean = self.indicator(lambda c: np.convolve(c, np.ones(5) / 5, mode="same"),
                                   data.base.close, name="centred_mean")


def test_how_far_ahead_is_measured(hours):
    result = run_backtest(Centred(), hours, BacktestConfig("BTC/USDT", "1h"), lookahead=True)
    assert [(f.indicator, f.ahead) for f in result.lookahead] == [("centred_mean", 2)]


@pytest.mark.parametrize("name", sorted(discover()))
def test_bundled_strategies_are_clean(name, hours):
    info = discover()[name]
    tf = info.timeframes[0]
    candles = hours
    if tf != "1h":
        candles, _ = CandleLoader(SAMPLE_DATA).load("binance", "BTC/USDT", tf)
        candles = candles.take(slice(0, 6000))
    # open interest and funding for the strategies that read them (oi_divergence)
    perp = synthetic_perp(candles, tf)
    result = run_backtest(info.cls(None), candles, BacktestConfig("BTC/USDT", tf),
                          lookahead=True, perp=perp)
    assert result.lookahead == []
    assert len(result.trades) >= 3


def test_full_check_finds_the_leak_and_passes_a_clean_strategy(tmp_path, hours):
    config = BacktestConfig("BTC/USDT", "1h")
    data = hours.take(slice(0, 1200))
    leaky = truncation_check(leaky_class(tmp_path), data, config, cuts=10)
    assert not leaky.clean and leaky.indicators[0].indicator == "next_close"
    assert any(c.mismatch for c in leaky.cuts)  # some truncated run traded differently
    info = discover()["sma_cross"]
    clean = truncation_check(lambda: info.cls({"fast": 10, "slow": 30}), data, config, cuts=6)
    assert clean.clean and len(clean.cuts) == 6 and all(c.compared for c in clean.cuts[1:])


class Prober(Strategy):
    """Walks everything it can reach from what it is given, at one candle mid-run."""

    name = "prober"
    timeframes = ["1h", "4h"]

    def on_init(self, data):
        self.copy = self.indicator(lambda c: c * 1.0, data.base.close, name="copy")
        self.problems: list[str] = []
        self.checked = 0

    def on_candle(self, data, portfolio):
        if len(data.base) != 150:
            return None
        visible = {"1h": len(data.base), "4h": len(data["4h"])}
        for obj in _public(data) + _public(self) + _public(portfolio):
            self.checked += 1
            if isinstance(obj, Column | Clock | MarketData):
                self.problems.append(f"reached {type(obj).__name__}")
            if isinstance(obj, np.ndarray | memoryview) and len(obj) > visible["1h"]:
                self.problems.append(f"reached {len(obj)} values with {visible} visible")
        return None


def _public(obj, depth=0, seen=None):
    """Every object reachable through public (non-underscore) attributes of ``obj``."""
    seen = seen if seen is not None else set()
    if id(obj) in seen or depth > 4 or isinstance(obj, int | float | str | bytes | type(None)):
        return []
    seen.add(id(obj))
    found = [obj]
    if isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, list | tuple):
        items = list(obj)
    else:
        items = []
        for name in dir(obj):
            if name.startswith("_"):
                continue
            try:
                value = getattr(obj, name)
            except Exception:
                continue
            if callable(value) and not isinstance(value, Column | Clock):
                continue
            items.append(value)
    for item in items:
        found += _public(item, depth + 1, seen)
    return found


def test_a_strategy_cannot_reach_future_candles(hours):
    strategy = Prober()
    run_backtest(strategy, hours.take(slice(0, 400)), BacktestConfig("BTC/USDT", "1h"))
    assert strategy.checked > 20 and strategy.problems == []
    assert not hasattr(strategy.copy, "full")


def test_visible_values_are_copies_and_bounded(hours):
    seen = {}

    class Writer(Strategy):
        name = "writer"
        timeframes = ["1h"]

        def on_candle(self, data, portfolio):
            if len(data.base) == 10:
                seen["type"] = type(data).__name__
                first = data.base.close[0]
                data.base.close.values[0] = -1.0  # a copy: the engine's candles are untouched
                data.base.close[:5][0] = -1.0
                if data.base.close[0] == first and data.base.close.values.base is None:
                    seen["write"] = "harmless"
                try:
                    data.base.close[10]
                except IndexError:
                    seen["future"] = "refused"
            return None

    run_backtest(Writer(), hours.take(slice(0, 50)), BacktestConfig("BTC/USDT", "1h"))
    assert seen == {"type": "MarketView", "write": "harmless", "future": "refused"}


def test_the_check_costs_little(hours):
    """A few truncated recomputations only: far less than the backtest itself."""
    import time

    info = discover()["rsi_reversion"]
    strategy = info.cls(None)
    market = MarketData("BTC/USDT", "1h", hours, [])
    market.prepare_steps()
    market.advance(100)
    strategy.bind(market)
    started = time.perf_counter()
    assert check_indicators(market, 101) == []
    check = time.perf_counter() - started
    started = time.perf_counter()
    run_backtest(info.cls(None), hours, BacktestConfig("BTC/USDT", "1h"))
    assert check < 0.5 * (time.perf_counter() - started)
