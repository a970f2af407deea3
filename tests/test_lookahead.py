"""No look-ahead: higher timeframes appear only once closed; signals never depend on the future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.frames import OHLCV
from data.loader import CandleLoader
from data.perp import PerpInputs
from engine.backtest import BacktestConfig, run_backtest
from engine.market import MarketData
from engine.portfolio import Portfolio
from engine.registry import discover
from engine.strategy import Strategy
from engine.types import Candle, Signal
from tests.helpers import MIN, SAMPLE_DATA, T0, candles
from tests.standins.exchange_derivs import synthetic_perp

HOUR = 60 * MIN


class Recorder(Strategy):
    """Records, at every base candle, the newest 1h candle it can see."""

    name = "recorder"
    timeframes = ["1m", "1h"]

    def on_init(self, data: MarketData) -> None:
        self.seen: list[tuple[int, int, int, float]] = []

    def on_candle(self, data: MarketData, portfolio: Portfolio) -> list[Signal] | None:
        hourly = data["1h"]
        newest = hourly.timestamp[-1] if len(hourly) else -1
        close = hourly.close[-1] if len(hourly) else float("nan")
        self.seen.append((data.base.timestamp[-1], data.now, newest, close))
        return None


def minute_candles(n: int, start: int = T0) -> OHLCV:
    closes = 100 + np.arange(n, dtype=float)
    return candles([(c, c + 0.5, c - 0.5, c) for c in closes], start=start, step=MIN)


def test_hour_candle_appears_exactly_at_the_close_of_its_last_minute():
    strategy = Recorder()
    run_backtest(strategy, minute_candles(180), BacktestConfig("BTC/USDT", "1m", trade_start=T0))
    seen = {base_ts: (now, newest, close) for base_ts, now, newest, close in strategy.seen}
    # 10:58 … at 00:58 the 00:00 hour is still forming
    assert seen[T0 + 58 * MIN][1] == -1
    # at the close of the 00:59 minute (now = 01:00) the 00:00 hour is visible, with its close
    now, newest, close = seen[T0 + 59 * MIN]
    assert (now, newest) == (T0 + HOUR, T0)
    assert close == 100 + 59  # the close of its last minute
    assert seen[T0 + 119 * MIN][1] == T0 + HOUR
    for _, now, newest, _ in strategy.seen:
        assert newest == -1 or newest + HOUR <= now  # never an unclosed hour


def test_leading_partial_hour_is_not_shown():
    strategy = Recorder()
    # data starts at 00:30: the 00:00 hour is incomplete and must never appear
    run_backtest(strategy, minute_candles(120, start=T0 + 30 * MIN),
                 BacktestConfig("BTC/USDT", "1m", trade_start=T0 + 30 * MIN))
    newest = {n for _, _, n, _ in strategy.seen}
    assert T0 not in newest and T0 + HOUR in newest


def test_series_view_refuses_the_future():
    market = MarketData("BTC/USDT", "1m", minute_candles(10), [])
    market.prepare_steps()
    market.advance(3)
    close = market.base.close
    assert len(close) == 4 and close[-1] == 103.0
    assert close.values.tolist() == [100.0, 101.0, 102.0, 103.0]
    with pytest.raises(IndexError):
        close[4]
    assert market.base.latest == Candle(T0 + 3 * MIN, 103.0, 103.5, 102.5, 103.0, 1.0)


def test_live_append_matches_backtest_visibility():
    """Forward runs aggregate bins incrementally; the result equals the vectorised view."""
    base = minute_candles(200, start=T0 + 30 * MIN)
    backtest = MarketData("BTC/USDT", "1m", base, ["5m", "1h"])
    backtest.prepare_steps()
    live = MarketData("BTC/USDT", "1m", base.take(slice(0, 50)), ["5m", "1h"])
    live.go_live()
    for i in range(50, 200):
        live.append(Candle(*(getattr(base, c)[i].item() for c in
                             ("timestamp", "open", "high", "low", "close", "volume"))))
        backtest.advance(i)
        for tf in ("5m", "1h"):
            assert len(live[tf]) == len(backtest[tf]), (i, tf)
            assert live[tf].close.values.tolist() == backtest[tf].close.values.tolist()
            assert live[tf].high.values.tolist() == backtest[tf].high.values.tolist()


def _sample(tf: str, n: int) -> OHLCV:
    loader = CandleLoader(SAMPLE_DATA)
    frame, _ = loader.load("binance", "BTC/USDT", tf)
    return frame.take(slice(0, n))


class SignalLog:
    """Wraps a strategy's on_candle to log the signals per candle time."""

    def __init__(self, strategy: Strategy) -> None:
        self.log: dict[int, list[str]] = {}
        inner = strategy.on_candle

        def on_candle(data, portfolio):
            out = inner(data, portfolio)
            if out:
                self.log[data.base.timestamp[-1]] = [
                    f"{s.action}:{s.size_percent}:{s.stop_loss:.6f}:{s.take_profit:.6f}"
                    for s in out]
            return out

        strategy.on_candle = on_candle  # type: ignore[method-assign]


def _signal_logs(make, data: OHLCV, tf: str, cuts: list[int],
                 perp: PerpInputs | None = None) -> list[tuple[dict, dict]]:
    """(full-run signals before the cut, truncated-run signals) for each cut index."""
    strategy = make()
    log = SignalLog(strategy)
    run_backtest(strategy, data, BacktestConfig("BTC/USDT", tf), perp=perp)
    pairs = []
    for cut in cuts:
        strategy = make()
        short = SignalLog(strategy)
        run_backtest(strategy, data.take(slice(0, cut)), BacktestConfig("BTC/USDT", tf),
                     perp=None if perp is None else perp.take(slice(0, cut)))
        t_cut = int(data.timestamp[cut])
        pairs.append(({t: s for t, s in log.log.items() if t < t_cut}, short.log))
    return pairs


@pytest.mark.parametrize("name", sorted(discover()))
def test_signals_on_truncated_data_equal_those_on_full_data(name):
    info = discover()[name]
    tf = "15m" if name == "mtf_trend" else "1h"
    full = _sample(tf, 4000)
    first_cut = info.cls(None, timeframe=tf).warmup_candles() + 200
    perp = synthetic_perp(full, tf)  # open interest and funding for oi_divergence
    pairs = _signal_logs(lambda: info.cls(None, timeframe=tf), full, tf,
                         list(range(first_cut, 4000, 131)), perp)
    for before_cut, truncated in pairs:
        assert truncated == before_cut
    assert len(pairs[-1][0]) >= 3, f"{name} emitted too few signals to prove anything"


def test_a_look_ahead_indicator_fails_the_truncation_check():
    """The check can fail: an indicator that reads the next close breaks it."""

    class Peeker(Strategy):
        name = "peeker"
        timeframes = ["1h"]

        def on_init(self, data):
            self.future = self.indicator(lambda c: np.roll(c, -1), data.base.close)

        def on_candle(self, data, portfolio):
            if self.future[-1] > data.base.close[-1] and portfolio.is_flat:
                return [Signal.open_long(50.0)]
            if self.future[-1] < data.base.close[-1] and portfolio.positions:
                return [Signal.close_all()]
            return None

    pairs = _signal_logs(Peeker, _sample("1h", 600), "1h", list(range(300, 600, 15)))
    assert any(truncated != before_cut for before_cut, truncated in pairs)


def test_sample_frame_is_real():
    frame = pd.read_parquet(SAMPLE_DATA / "binance_BTC-USDT_1h.parquet")
    assert len(frame) == 24_083
