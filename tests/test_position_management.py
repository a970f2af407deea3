"""Managing open positions (DESIGN §4b) on hand-made candles: exact fills, fees and PnL."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backtest import BacktestConfig, run_backtest
from engine.fills import FillModel
from engine.indicators import crossover
from engine.sizing import atr_stop, kelly_fraction, risk_size
from engine.strategy import Strategy, crossed_above
from engine.types import Signal, Trade
from tests.helpers import HOUR, MIN, T0, Scripted, candles

FILLS = FillModel(taker_fee_bps=10, maker_fee_bps=2, slippage_bps=0)


def run(rows, script, lower=None, fills=FILLS):
    result = run_backtest(Scripted(script), candles(rows),
                          BacktestConfig("BTC/USDT", "1h", balance=10_000.0, fills=fills,
                                         trade_start=T0), lower)
    return result


def test_trailing_stop_long_is_set_at_the_close_and_in_force_from_the_next_candle():
    rows = [(100, 100, 100, 100),
            (100, 110, 99, 108),   # the new high sets 104.5 for the NEXT candle: low 99 is fine
            (108, 109, 104, 105),  # 104 <= 104.5: the trailing stop fills at its level
            (105, 105, 105, 105)]
    r = run(rows, {0: [Signal.open_long(size=1, trailing_stop_pct=5)]})
    [t] = r.trades
    assert t.exit_reason == "trailing_stop" and t.exit_price == 104.5
    assert t.exit_time == T0 + 2 * HOUR
    assert t.entry_fee == pytest.approx(0.1) and t.exit_fee == pytest.approx(0.1045)
    assert t.pnl == pytest.approx(4.5 - 0.1 - 0.1045)
    assert t.stop_loss == pytest.approx(104.5)  # the level in force at the end


def test_trailing_stop_short_gapped_through_fills_at_the_open():
    rows = [(100, 100, 100, 100),
            (100, 101, 90, 92),    # best 90 → level 94.5 from the next candle
            (96, 97, 95, 96),      # opens above 94.5: a gap, filled at the open
            (96, 96, 96, 96)]
    r = run(rows, {0: [Signal.open_short(size=1, trailing_stop_pct=5)]},
            fills=FillModel(10, 2, 10))
    [t] = r.trades
    entry = 100 * (1 - 0.001)  # a short sells: slippage lowers the fill
    exit_price = 96 * (1 + 0.001)  # a stop buys back: slippage raises it
    assert t.exit_reason == "trailing_stop" and t.exit_time == T0 + 2 * HOUR
    assert t.entry_price == pytest.approx(entry) and t.exit_price == pytest.approx(exit_price)
    assert t.pnl == pytest.approx(entry - exit_price - entry * 0.001 - exit_price * 0.001)


def test_the_trailing_stop_never_loosens_and_a_tighter_fixed_stop_wins():
    rows = [(100, 100, 100, 100), (100, 120, 100, 118), (118, 119, 100.5, 101),
            (101, 101, 101, 101)]
    # trailing 10 %: 90 → 108 after candle 1; candle 2's lower high keeps 108 (never loosens)
    r = run(rows, {0: [Signal.open_long(size=1, trailing_stop_pct=10, stop_loss=95)]})
    [t] = r.trades
    assert t.exit_reason == "trailing_stop" and t.exit_price == pytest.approx(108.0)
    rows = [(100, 100, 100, 100), (100, 102, 100, 101), (101, 101, 99.2, 99.5),
            (99.5, 99.5, 99.5, 99.5)]
    r = run(rows, {0: [Signal.open_long(size=1, trailing_stop_pct=5, stop_loss=99.5)]})
    [t] = r.trades
    assert t.exit_reason == "stop_loss" and t.exit_price == 99.5  # 99.5 beats 96.9


def test_a_stop_moved_by_update_is_in_force_from_the_next_candle_then_hit():
    rows = [(100, 100, 100, 100),
            (100, 105, 99, 104),     # the update comes at this close: 99 < 101 does not hit
            (104, 104, 100.5, 101),  # 100.5 <= 101: the moved stop fills
            (101, 101, 101, 101)]
    r = run(rows, {0: [Signal.open_long(size=1, stop_loss=90)],
                   1: [Signal.update(1, stop_loss=101)]})
    [t] = r.trades
    assert t.exit_reason == "stop_loss" and t.exit_price == 101 and t.exit_time == T0 + 2 * HOUR
    assert t.pnl == pytest.approx(1 - 0.1 - 0.101)
    assert not r.rejections


def test_three_scale_out_levels_two_in_one_candle_and_pro_rata_entry_fees():
    rows = [(100, 100, 100, 100),
            (100, 104.5, 99, 104),   # 102 and 104 both fill, nearest first
            (104, 107, 103, 106.5),  # 106 fills the last third
            (106, 106, 106, 106)]
    levels = [(102, 1 / 3), (104, 1 / 3), (106, 1 / 3)]
    r = run(rows, {0: [Signal.open_long(size=3, stop_loss=95, take_profits=levels)]})
    [t] = r.trades
    assert [(e.time, e.price, e.reason) for e in r.exits] == [
        (T0 + HOUR, 102, "take_profit"), (T0 + HOUR, 104, "take_profit"),
        (T0 + 2 * HOUR, 106, "take_profit")]
    assert [e.size for e in r.exits] == pytest.approx([1, 1, 1])
    fees = [102 * 0.0002, 104 * 0.0002, 106 * 0.0002]
    assert [e.fee for e in r.exits] == pytest.approx(fees)
    # each part carries a third of the 0.3 entry fee
    assert [e.pnl for e in r.exits] == pytest.approx([2 - 0.1 - fees[0], 4 - 0.1 - fees[1],
                                                      6 - 0.1 - fees[2]])
    assert t.size == 3 and t.exit_price == pytest.approx(104.0)
    assert t.exit_reason == "take_profit" and t.exit_time == T0 + 2 * HOUR
    assert t.entry_fee == pytest.approx(0.3) and t.exit_fee == pytest.approx(sum(fees))
    assert t.pnl == pytest.approx(12 - 0.3 - sum(fees)) == pytest.approx(
        sum(e.pnl for e in r.exits))
    assert r.final_equity == pytest.approx(10_000 + t.pnl)


def quarter_hours(rows: list[tuple[float, float, float, float]], start: int):
    return candles(rows, start=start, step=15 * MIN)


def test_a_candle_touching_the_stop_and_a_scale_out_level_is_drilled_down():
    rows = [(100, 100, 100, 100), (100, 104, 96, 100), (100, 100, 100, 100)]
    lower_rows = [(100, 103.5, 99.5, 103),  # the level first …
                  (103, 103.2, 96.5, 97.5),  # … then the stop, for what is left
                  (97.5, 99, 97.5, 99), (99, 100, 99, 100)]

    def lower(timeframe, start, end):
        if timeframe != "15m":
            return None
        return quarter_hours(lower_rows, T0 + HOUR).between(start, end)

    r = run(rows, {0: [Signal.open_long(size=2, stop_loss=97, take_profit=106,
                                        take_profits=[(103, 0.5)])]}, lower)
    [t] = r.trades
    assert [(e.reason, e.price, e.size, e.time) for e in r.exits] == [
        ("take_profit", 103, 1, T0 + HOUR), ("stop_loss", 97, 1, T0 + HOUR + 15 * MIN)]
    assert r.exit_counts.drill_down == 1 and r.exit_counts.conservative == 0
    assert t.exit_reason == "stop_loss" and t.exit_price == pytest.approx(100.0)
    assert t.pnl == pytest.approx(3 - 3 - 0.2 - 103 * 0.0002 - 97 * 0.001)

    lower_rows[0] = (100, 100.5, 96.8, 97.2)  # now the stop comes first: all of it leaves
    r = run(rows, {0: [Signal.open_long(size=2, stop_loss=97, take_profit=106,
                                        take_profits=[(103, 0.5)])]}, lower)
    assert [(e.reason, e.size) for e in r.exits] == [("stop_loss", 2)]


def test_partial_closes_by_signal_fraction_and_size_then_end_of_data():
    rows = [(100, 100, 100, 100), (110, 110, 110, 110), (120, 120, 120, 120),
            (100, 100, 100, 100)]
    r = run(rows, {0: [Signal.open_long(size=2)],
                   1: [Signal.close(1, fraction=0.25)],
                   2: [Signal.close(1, size=0.5)]})
    assert [(e.reason, e.size, e.price) for e in r.exits] == [
        ("signal", 0.5, 110), ("signal", 0.5, 120), ("end_of_data", 1.0, 100)]
    assert [e.pnl for e in r.exits] == pytest.approx([5 - 0.05 - 0.055, 10 - 0.05 - 0.06,
                                                      0 - 0.1 - 0.1])
    [t] = r.trades
    assert t.size == 2 and t.exit_price == pytest.approx(107.5)
    assert t.exit_reason == "end_of_data"
    assert t.pnl == pytest.approx(sum(e.pnl for e in r.exits))
    assert r.final_equity == pytest.approx(10_000 + t.pnl)


class Holder(Strategy):
    """Opens once with a time exit; records how many positions it saw at each close."""

    name = "holder"
    timeframes = ["1h"]

    def __init__(self) -> None:
        super().__init__({}, timeframe="1h")
        self.seen: list[int] = []

    def on_candle(self, data, portfolio):
        self.seen.append(len(portfolio.positions))
        if len(data.base) == 1:
            return [Signal.open_long(size=1, max_hold=2)]
        return None


def test_time_exit_at_the_close_of_the_max_hold_candle_before_on_candle():
    strategy = Holder()
    rows = [(100, 100, 100, 100), (100, 101, 99, 101), (101, 103, 100, 102),
            (102, 102, 102, 102)]
    r = run_backtest(strategy, candles(rows), BacktestConfig(
        "BTC/USDT", "1h", fills=FillModel(10, 2, 5), trade_start=T0))
    [t] = r.trades
    assert t.exit_reason == "time_exit" and t.exit_time == T0 + 3 * HOUR  # close of candle 2
    assert t.exit_price == pytest.approx(102 * (1 - 0.0005))  # market exit: slippage
    assert t.exit_fee == pytest.approx(t.exit_price * 0.001)
    assert strategy.seen == [0, 1, 0, 0]  # candle 2's on_candle no longer sees it


def test_every_invalid_request_is_a_rejection_with_its_reason():
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 100, 100)]
    r = run(rows, {
        0: [Signal.open_long(size=1, stop_loss=90),
            Signal.open_long(size=1, take_profits=[(110, 0.6), (120, 0.6)]),
            Signal.open_long(size=1, take_profits=[(95, 0.5)]),
            Signal.open_long(size=1, take_profits=[(110, 0)]),
            Signal.open_long(size=1, trailing_stop_pct=100),
            Signal.open_long(size=1, max_hold=-1)],
        1: [Signal.update(7, stop_loss=95),
            Signal.update(1, stop_loss=100),
            Signal.update(1, take_profit=99),
            Signal.update(1),
            Signal.close(7),
            Signal.close(1, fraction=0),
            Signal.close(1, fraction=1.5),
            Signal.close(1, size=2)],
    })
    reasons = [x.reason for x in r.rejections]
    assert reasons == [
        "take_profits fractions sum to 1.2; at most 1 (of the initial size)",
        "take_profits level 95 must be above the entry 100",
        "a take_profits fraction must be in (0, 1] of the initial size, got 0",
        "trailing_stop_pct must be between 0 and 100 (exclusive), got 100",
        "max_hold must be a whole number of candles >= 0, got -1",
        "no open position with id 7",
        "stop_loss 100 must be below the price 100 for a long position",
        "take_profit 99 must be above the price 100 for a long position",
        "give stop_loss and/or take_profit to update",
        "no open position with id 7",
        "fraction must be in (0, 1] of the remaining size, got 0",
        "fraction must be in (0, 1] of the remaining size, got 1.5",
        "size must be in (0, 1] (the remaining size), got 2",
    ]
    assert [x.action for x in r.rejections[:5]] == ["open_long"] * 5
    [t] = r.trades  # nothing adjusted: the valid position is untouched until the end
    assert t.size == 1 and t.stop_loss == 90 and t.exit_reason == "end_of_data"


def test_sizing_helpers():
    assert risk_size(10_000, 1, 100, 98, fee_bps=10) == pytest.approx(100 / 2.198)
    size = risk_size(10_000, 2, 50, 55, fee_bps=10, slippage_bps=10)  # a short's stop
    stop_fill = 55 * 1.001
    assert size * ((stop_fill - 50) + (50 + stop_fill) * 0.001) == pytest.approx(200)
    with pytest.raises(ValueError):
        risk_size(10_000, 1, 100, 100)
    assert atr_stop(100, 2.5, 2) == 95 and atr_stop(100, 2.5, 2, "short") == 105

    def trade(pct: float) -> Trade:
        return Trade(1, "X/Y", "long", 1, 0, 100, 1, 100 + pct, pct, 0, 0, "signal")

    trades = [trade(p) for p in (4, 4, 4, -2, -2)]  # W = 0.6, R = 2 → f = 0.6 − 0.4/2 = 0.4
    assert kelly_fraction(trades, cap=1) == pytest.approx(0.4)
    assert kelly_fraction(trades) == 0.25  # capped
    assert kelly_fraction([trade(-1)]) == 0.0 and kelly_fraction([]) == 0.0


def test_an_exact_tie_of_two_averages_is_not_a_cross():
    rng = np.random.default_rng(7)
    slow = rng.uniform(90, 110, 200)
    fast = slow * (1 + rng.choice([-1, 1], 200) * 1e-14)  # equal but for float noise
    fast[150:] = slow[150:] * 1.01  # a real cross at 150
    crosses = crossover(fast, slow)
    assert np.flatnonzero(crosses).tolist() == [150]
    assert crossed_above(_View(fast[:151]), _View(slow[:151]))
    assert not crossed_above(_View(fast[:120]), _View(slow[:120]))
    assert crossover(np.array([np.nan, 1.0]), np.array([1.0, 0.5]))[1] == 0  # nan never crosses


class _View(list):
    """A plain list standing in for a SeriesView in crossed_above."""
