"""TA-Lib as the indicator library: our hand-written indicators equal TA-Lib's where both
exist, and TA-Lib functions register directly as strategy indicators (causal, plotted)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from data.frames import OHLCV
from engine import indicators as ind
from engine.backtest import BacktestConfig, run_backtest
from engine.plots import plot_lines
from engine.series import stored
from engine.strategy import Strategy
from engine.types import Signal
from tests.helpers import SAMPLE_DATA


@pytest.fixture(scope="module")
def hours() -> OHLCV:
    frame = pd.read_parquet(SAMPLE_DATA / "binance_BTC-USDT_1h.parquet")
    return OHLCV.from_frame(frame.iloc[:6000])


def test_sma_and_rolling_extremes_equal_talib(hours: OHLCV) -> None:
    c, h, low = hours.close, hours.high, hours.low
    for period in (2, 20, 200):
        ours, theirs = ind.sma(c, period), talib.SMA(c, period)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, equal_nan=True)
        np.testing.assert_array_equal(ind.rolling_max(h, period), talib.MAX(h, period))
        np.testing.assert_array_equal(ind.rolling_min(low, period), talib.MIN(low, period))
    # with nan inside, the window reduction (nan where a window holds one) is kept
    holed = c.copy()
    holed[100] = np.nan
    assert np.isnan(ind.rolling_max(holed, 5)[100:105]).all()
    assert ind.rolling_max(holed, 5)[105] == np.max(c[101:106])


@pytest.mark.parametrize("name,period", [("ema", 9), ("ema", 50), ("rsi", 14), ("atr", 14)])
def test_recursive_indicators_equal_talib_once_the_seed_has_decayed(hours: OHLCV, name: str,
                                                                    period: int) -> None:
    c, h, low = hours.close, hours.high, hours.low
    if name == "atr":
        ours, theirs = ind.atr(h, low, c, period), talib.ATR(h, low, c, period)
    else:
        ours = getattr(ind, name)(c, period)
        theirs = getattr(talib, name.upper())(c, period)
    settled = 30 * period  # ours seeds with the first value, TA-Lib with a mean of `period`
    np.testing.assert_allclose(ours[settled:], theirs[settled:], rtol=1e-9)
    first_ours = int(np.flatnonzero(~np.isnan(ours))[0])
    first_theirs = int(np.flatnonzero(~np.isnan(theirs))[0])
    assert abs(first_ours - first_theirs) <= 1  # both undefined for about one period


class MacdBands(Strategy):
    """Long when the MACD line crosses above its signal inside the lower Bollinger half."""

    name = "macd_bands"
    timeframes = ["1h"]
    params = {"fast": 12, "slow": 26}
    plots = {"bands": "price", "macd": "panel"}

    def warmup_candles(self) -> int:
        return 60

    def on_init(self, data) -> None:
        close = data.base.close
        self.macd, self.signal, _ = self.indicator(
            talib.MACD, close, fastperiod=self.p.fast, slowperiod=self.p.slow, signalperiod=9,
            name="macd")
        self.upper, self.middle, self.lower = self.indicator(
            talib.BBANDS, close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, name="bands")
        self.adx = self.indicator(talib.ADX, data.base.high, data.base.low, close, 14)
        self.k, self.d = self.indicator(talib.STOCH, data.base.high, data.base.low, close,
                                        name="stoch")

    def on_candle(self, data, portfolio):
        close = data.base.close[-1]
        crossed = self.macd[-1] > self.signal[-1] and self.macd[-2] <= self.signal[-2]
        if not portfolio.positions and crossed and close < self.middle[-1]:
            return [Signal.open_long(50, take_profit=self.upper[-1])]
        if portfolio.positions and close < self.lower[-1]:
            return [Signal.close_all()]
        return None


def test_talib_functions_register_as_indicators_causally_and_plot(hours: OHLCV) -> None:
    config = BacktestConfig(symbol="BTC/USDT", timeframe="1h")
    strategy = MacdBands()
    result = run_backtest(strategy, hours, config)
    assert result.trades  # the strategy traded on TA-Lib's values
    # causal: the values seen at candle i equal those computed on candles 0..i only
    full_macd = np.asarray(stored(strategy.registered["macd"][0]))
    for cut in (300, 2000, 4500):
        short = talib.MACD(hours.close[:cut], fastperiod=12, slowperiod=26, signalperiod=9)[0]
        np.testing.assert_allclose(full_macd[:cut], short, rtol=1e-12, equal_nan=True)
    lines = plot_lines(strategy, result.warmup, len(result.candles))
    assert [(ln.name, ln.panel) for ln in lines] == [
        ("bands[0]", "price"), ("bands[1]", "price"), ("bands[2]", "price"),
        ("macd[0]", "macd"), ("macd[1]", "macd"), ("macd[2]", "macd")]
    assert all(len(ln.values) == len(result.candles) for ln in lines)
    assert strategy.registered["ADX"] is strategy.adx  # unnamed: the function's name
