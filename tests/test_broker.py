"""Exact fills, fees, PnL and equity of the broker on hand-made candles (DESIGN §4)."""

from __future__ import annotations

import numpy as np
import pytest

from data.frames import OHLCV
from engine.backtest import BacktestConfig, run_backtest
from engine.fills import FillModel
from engine.types import Signal
from tests.helpers import HOUR, MIN, T0, Scripted, candles

SLIP = 0.001  # 10 bp
TAKER = 0.001  # 10 bp
MAKER = 0.0002  # 2 bp
FILLS = FillModel(taker_fee_bps=10, maker_fee_bps=2, slippage_bps=10)


def run(rows, script, lower=None, balance=10_000.0, fills=FILLS):
    strategy = Scripted(script)
    config = BacktestConfig("BTC/USDT", "1h", balance=balance, fills=fills, trade_start=T0)
    return run_backtest(strategy, candles(rows), config, lower)


def long_entry(size_percent=50.0, stop=95.0, take=110.0):
    return {0: [Signal.open_long(size_percent, stop_loss=stop, take_profit=take)]}


ENTRY = 100.0 * (1 + SLIP)  # market buy at the 100 close, worsened by slippage
SIZE = 10_000.0 * 0.5 / ENTRY
ENTRY_FEE = ENTRY * SIZE * TAKER  # = 5.0


def test_entry_fill_fee_and_equity_at_close():
    result = run([(100, 100, 100, 100), (100, 100, 100, 100)], long_entry())
    trade = result.trades[0]
    assert trade.entry_price == pytest.approx(100.1)
    assert trade.size == pytest.approx(SIZE)
    assert trade.entry_fee == pytest.approx(5.0)
    assert trade.entry_time == T0 + HOUR  # the signal candle's close
    # equity at candle 0's close: balance after fee + unrealised at the 100 close
    assert result.equity[0] == pytest.approx(10_000 - 5.0 + (100 - ENTRY) * SIZE)


def test_stop_loss_only_fills_at_stop_with_slippage_and_taker_fee():
    result = run([(100, 100, 100, 100), (100, 101, 94, 96)], long_entry())
    trade = result.trades[0]
    exit_price = 95.0 * (1 - SLIP)
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_price == pytest.approx(exit_price)
    assert trade.exit_fee == pytest.approx(exit_price * SIZE * TAKER)
    assert trade.exit_time == T0 + HOUR  # open time of the candle where it was hit
    expected_pnl = (exit_price - ENTRY) * SIZE - ENTRY_FEE - exit_price * SIZE * TAKER
    assert trade.pnl == pytest.approx(expected_pnl, rel=1e-12)
    assert result.final_equity == pytest.approx(10_000 + expected_pnl, rel=1e-12)
    assert result.equity[-1] == pytest.approx(result.final_equity)


def test_take_profit_only_fills_at_level_with_maker_fee():
    result = run([(100, 100, 100, 100), (100, 111, 99, 105)], long_entry())
    trade = result.trades[0]
    assert trade.exit_reason == "take_profit"
    assert trade.exit_price == 110.0
    assert trade.exit_fee == pytest.approx(110.0 * SIZE * MAKER)
    assert trade.pnl == pytest.approx((110.0 - ENTRY) * SIZE - ENTRY_FEE - 110.0 * SIZE * MAKER)


def test_exits_are_checked_from_the_candle_after_entry():
    # the signal candle's own low (90) is below the stop: it must not trigger
    result = run([(100, 100, 90, 100), (100, 101, 99, 100)], long_entry())
    assert result.trades[0].exit_reason == "end_of_data"


def test_gap_through_stop_fills_at_the_open():
    result = run([(100, 100, 100, 100), (93, 94, 90, 92)], long_entry())
    trade = result.trades[0]
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_price == pytest.approx(93.0 * (1 - SLIP))


def test_gap_through_take_profit_fills_at_the_better_open():
    result = run([(100, 100, 100, 100), (112, 113, 111, 112)], long_entry())
    trade = result.trades[0]
    assert trade.exit_reason == "take_profit"
    assert trade.exit_price == 112.0
    assert trade.exit_fee == pytest.approx(112.0 * SIZE * MAKER)


def minute_source(rows, hour_index=1):
    """A drill-down source holding 1m candles for one hour only."""
    lower = candles(rows, start=T0 + hour_index * HOUR, step=MIN)

    def source(timeframe, start, end):
        if timeframe != "1m":
            return None
        return lower.between(start, end)

    return source


BOTH = [(100, 100, 100, 100), (100, 111, 94, 100)]


def test_both_levels_in_one_candle_resolved_by_drill_down_take_profit_first():
    minutes = [(100, 100.5, 99.5, 100)] * 10 + [(100, 111, 100, 108)] + \
        [(108, 108, 94, 95)] + [(95, 100, 95, 100)] * 48
    result = run(BOTH, long_entry(), lower=minute_source(minutes))
    trade = result.trades[0]
    assert trade.exit_reason == "take_profit"
    assert trade.exit_price == 110.0
    assert trade.exit_time == T0 + HOUR + 10 * MIN
    assert (result.exit_counts.drill_down, result.exit_counts.conservative) == (1, 0)


def test_both_levels_in_one_candle_resolved_by_drill_down_stop_first():
    minutes = [(100, 100.5, 99.5, 100)] * 5 + [(100, 100, 94, 96)] + \
        [(96, 111, 96, 110)] + [(110, 110, 100, 100)] * 53
    result = run(BOTH, long_entry(), lower=minute_source(minutes))
    trade = result.trades[0]
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_price == pytest.approx(95.0 * (1 - SLIP))
    assert trade.exit_time == T0 + HOUR + 5 * MIN
    assert (result.exit_counts.drill_down, result.exit_counts.conservative) == (1, 0)


def test_both_levels_in_one_1m_candle_assumes_stop_loss():
    minutes = [(100, 100.5, 99.5, 100)] * 30 + [(100, 111, 94, 100)] + \
        [(100, 100, 100, 100)] * 29
    result = run(BOTH, long_entry(), lower=minute_source(minutes))
    trade = result.trades[0]
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_price == pytest.approx(95.0 * (1 - SLIP))
    assert trade.exit_time == T0 + HOUR + 30 * MIN
    assert (result.exit_counts.drill_down, result.exit_counts.conservative) == (0, 1)


def test_both_levels_without_lower_data_assume_stop_loss():
    result = run(BOTH, long_entry(), lower=None)
    assert result.trades[0].exit_reason == "stop_loss"
    assert (result.exit_counts.drill_down, result.exit_counts.conservative) == (0, 1)


def test_drill_down_walks_the_chain_15m_then_1m():
    # 15m candles: the second quarter holds both levels; inside it 1m says take-profit first
    quarters = candles([(100, 101, 99, 100), (100, 111, 94, 100), (100, 100, 100, 100),
                        (100, 100, 100, 100)], start=T0 + HOUR, step=15 * MIN)
    minutes = candles([(100, 100, 100, 100)] * 3 + [(100, 111, 100, 105)] +
                      [(105, 105, 94, 95)] + [(95, 95, 95, 95)] * 10,
                      start=T0 + HOUR + 15 * MIN, step=MIN)
    asked = []

    def source(timeframe, start, end):
        asked.append(timeframe)
        data = {"15m": quarters, "1m": minutes}.get(timeframe)
        return None if data is None else data.between(start, end)

    result = run(BOTH, long_entry(), lower=source)
    trade = result.trades[0]
    assert trade.exit_reason == "take_profit"
    assert trade.exit_time == T0 + HOUR + 18 * MIN
    assert asked[0] == "15m" and "1m" in asked
    assert result.exit_counts.drill_down == 1


def test_short_stop_loss_and_pnl():
    script = {0: [Signal.open_short(50.0, stop_loss=105.0, take_profit=90.0)]}
    result = run([(100, 100, 100, 100), (100, 106, 99, 101)], script)
    trade = result.trades[0]
    entry = 100.0 * (1 - SLIP)  # market sell: worse price is lower
    size = 5_000.0 / entry
    exit_price = 105.0 * (1 + SLIP)  # buying back above the stop
    assert trade.side == "short"
    assert trade.entry_price == pytest.approx(entry)
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_price == pytest.approx(exit_price)
    expected = (entry - exit_price) * size - entry * size * TAKER - exit_price * size * TAKER
    assert trade.pnl == pytest.approx(expected, rel=1e-12)


def test_short_take_profit():
    script = {0: [Signal.open_short(50.0, stop_loss=105.0, take_profit=90.0)]}
    result = run([(100, 100, 100, 100), (100, 101, 89, 95)], script)
    trade = result.trades[0]
    assert trade.exit_reason == "take_profit"
    assert trade.exit_price == 90.0
    assert trade.pnl > 0


def test_order_needing_more_than_free_margin_is_rejected_not_shrunk():
    script = {0: [Signal.open_long(100.0)]}  # notional = equity, plus the fee: too much
    result = run([(100, 100, 100, 100)] * 3, script)
    assert result.trades == []
    assert len(result.rejections) == 1
    assert "free margin" in result.rejections[0].reason
    assert result.final_equity == 10_000.0


def test_second_position_rejected_when_margin_is_used():
    script = {0: [Signal.open_long(60.0)], 1: [Signal.open_long(60.0)]}
    result = run([(100, 100, 100, 100)] * 3, script)
    assert len(result.trades) == 1
    assert len(result.rejections) == 1


def test_several_positions_at_once_with_their_own_levels():
    script = {0: [Signal.open_long(30.0, stop_loss=95.0)],
              1: [Signal.open_long(30.0, stop_loss=90.0)]}
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 93, 97),
            (97, 98, 96, 97)]
    result = run(rows, script)
    by_id = {t.id: t for t in result.trades}
    assert by_id[1].exit_reason == "stop_loss" and by_id[1].exit_time == T0 + 2 * HOUR
    assert by_id[2].exit_reason == "end_of_data"
    assert by_id[2].exit_price == pytest.approx(97.0 * (1 - SLIP))
    assert by_id[2].exit_time == T0 + 4 * HOUR


def test_signal_close_and_close_all():
    script = {0: [Signal.open_long(30.0), Signal.open_short(30.0)],
              1: [Signal.close(1)], 2: [Signal.close_all()]}
    result = run([(100, 100, 100, 100), (102, 102, 102, 102), (98, 98, 98, 98),
                  (98, 98, 98, 98)], script)
    by_id = {t.id: t for t in result.trades}
    assert by_id[1].exit_reason == "signal"
    assert by_id[1].exit_price == pytest.approx(102 * (1 - SLIP))
    assert by_id[2].exit_reason == "signal"
    assert by_id[2].exit_price == pytest.approx(98 * (1 + SLIP))
    assert by_id[2].exit_time == T0 + 3 * HOUR


def test_close_of_unknown_position_is_rejected():
    result = run([(100, 100, 100, 100)] * 2, {0: [Signal.close(7)]})
    assert result.rejections[0].reason == "no open position with id 7"


def test_levels_on_the_wrong_side_are_rejected():
    script = {0: [Signal.open_long(50.0, stop_loss=101.0)]}
    result = run([(100, 100, 100, 100)] * 2, script)
    assert result.trades == [] and "stop_loss" in result.rejections[0].reason


def test_fees_and_pnl_add_up_to_the_final_equity():
    script = {0: [Signal.open_long(50.0)], 2: [Signal.close_all()],
              3: [Signal.open_short(40.0)], 5: [Signal.close_all()]}
    rows = [(100, 100, 100, 100), (104, 104, 104, 104), (106, 106, 106, 106),
            (103, 103, 103, 103), (99, 99, 99, 99), (97, 97, 97, 97), (97, 97, 97, 97)]
    result = run(rows, script)
    assert len(result.trades) == 2
    assert result.final_equity == pytest.approx(10_000 + sum(t.pnl for t in result.trades))
    assert result.metrics.fees_paid == pytest.approx(sum(t.fees for t in result.trades))
    assert np.all(np.isfinite(result.equity))


def test_zero_fees_and_slippage_give_gross_pnl():
    fills = FillModel(taker_fee_bps=0, maker_fee_bps=0, slippage_bps=0)
    result = run([(100, 100, 100, 100), (110, 110, 110, 110)],
                 {0: [Signal.open_long(50.0)]}, fills=fills)
    assert result.trades[0].pnl == pytest.approx(500.0)
    assert isinstance(result.candles, OHLCV)
