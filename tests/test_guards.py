"""Risk guards (protections) on hand-made candles: the entries they block, the reason text, when
they lift, the UTC day boundary, drawdown from the peak, flatten, alerts once per trip, and
state carried across a restart."""

from __future__ import annotations

import json

import pytest

from engine.backtest import BacktestConfig, BacktestResult, run_backtest
from engine.core import Core
from engine.drilldown import DrillDown
from engine.events import GuardLifted, GuardTripped, SignalRejected
from engine.fills import FillModel
from engine.market import MarketData
from engine.portfolio import Portfolio
from engine.risk import Guards, Protections
from engine.types import Signal
from tests.helpers import HOUR, T0, Scripted, candles

FLAT = (100.0, 100.0, 100.0, 100.0)
STOPPED = (100.0, 100.0, 94.0, 100.0)  # reaches a stop-loss at 95


def backtest(rows, script, **protections) -> BacktestResult:
    """A fee-free backtest of ``script`` over 1h ``rows`` from T0 with ``protections``."""
    return run_backtest(Scripted(script), candles(rows), BacktestConfig(
        "BTC/USDT", "1h", fills=FillModel(0, 0, 0), protections=Protections(**protections)))


def close(i: int) -> int:
    """Close time of candle ``i`` (ms UTC)."""
    return T0 + (i + 1) * HOUR


def entries(result: BacktestResult) -> list[int]:
    """Candle indices whose close opened a position."""
    return [(t.entry_time - T0) // HOUR - 1 for t in result.trades]


def blocked(result: BacktestResult) -> list[int]:
    """Candle indices whose entry was refused."""
    return [(r.ts - T0) // HOUR - 1 for r in result.rejections]


def long(stop: float = 50.0, pct: float = 10.0) -> list[Signal]:
    return [Signal.open_long(pct, stop_loss=stop)]


def tiny() -> list[Signal]:
    """An entry too small to move the equity figures in the reasons."""
    return [Signal.open_long(size=0.001, stop_loss=50.0)]


# ---- cooldown ------------------------------------------------------------------------------------
def test_cooldown_blocks_n_candles_after_a_stop_loss():
    rows = [FLAT, STOPPED] + [FLAT] * 6
    script = {0: long(stop=95.0), **{i: long() for i in range(1, 7)}}
    result = backtest(rows, script, cooldown=3)
    first = result.trades[0]
    assert first.exit_reason == "stop_loss" and first.exit_time == T0 + HOUR  # in candle 1
    # candle 1 closed at 02:00: its entry and the next two are refused, 05:00 is allowed
    assert blocked(result) == [1, 2, 3]
    assert entries(result) == [0, 4, 5, 6]
    assert result.rejections[0].reason == (
        "cooldown: no entries until 2024-01-01 05:00 UTC (3 candles after the stop-loss "
        "candle closed at 02:00)")
    assert result.rejections[0].action == "open_long"
    assert result.guard_blocks == {"cooldown": 3}


def test_cooldown_ignores_exits_other_than_stop_loss():
    rows = [FLAT, (100.0, 106.0, 100.0, 100.0)] + [FLAT] * 3
    script = {0: [Signal.open_long(10, take_profit=105.0)], **{i: long() for i in range(1, 4)}}
    result = backtest(rows, script, cooldown=3)
    assert result.trades[0].exit_reason == "take_profit"
    assert blocked(result) == [] and entries(result) == [0, 1, 2, 3]
    assert result.guard_blocks == {"cooldown": 0}


# ---- stoploss_guard ------------------------------------------------------------------------------
def test_stoploss_guard_locks_after_k_stop_losses_within_n_candles():
    rows = [FLAT, STOPPED, STOPPED] + [FLAT] * 6
    script = {0: long(stop=95.0), 1: long(stop=95.0), **{i: long() for i in range(2, 9)}}
    result = backtest(rows, script, stoploss_guard=(2, 3, 4))
    assert [t.exit_reason for t in result.trades[:2]] == ["stop_loss", "stop_loss"]
    # the second stop-loss is in candle 2 (closed 03:00): locked for 4 candles, until 07:00
    assert blocked(result) == [2, 3, 4, 5]
    assert entries(result)[2:] == [6, 7, 8]
    assert result.rejections[0].reason == (
        "stoploss_guard: no entries until 2024-01-01 07:00 UTC (2 stop-losses within 3 "
        "candles, the last in the candle closed at 03:00; locked for 4 candles)")


def test_stoploss_guard_counts_only_the_last_n_candles():
    # stop-losses in candles 1 and 4: three candles apart, never two within a window of 3
    rows = [FLAT, STOPPED, FLAT, FLAT, STOPPED, FLAT, FLAT]
    script = {0: long(stop=95.0), 3: long(stop=95.0), 5: long(), 6: long()}
    result = backtest(rows, script, stoploss_guard=(2, 3, 4))
    assert [t.exit_reason for t in result.trades[:2]] == ["stop_loss", "stop_loss"]
    assert blocked(result) == [] and entries(result) == [0, 3, 5, 6]


# ---- max_open_positions --------------------------------------------------------------------------
def test_max_open_positions_blocks_until_a_position_closes():
    script = {0: long(), 1: long(), 2: long(), 3: [Signal.close(1), *long()], 4: long()}
    result = backtest([FLAT] * 5, script, max_open_positions=2)
    assert blocked(result) == [2, 4]  # candle 3 closed #1 first, then had room for one
    assert sorted(entries(result)) == [0, 1, 3]
    assert result.rejections[0].reason == (
        "max_open_positions: no entries until a position closes (2 open, limit 2)")


# ---- daily_loss_limit_pct ------------------------------------------------------------------------
def test_daily_loss_limit_blocks_until_the_next_utc_day():
    # candle 0 closes at 01:00, the day's first close (equity 10,000); the long of 50 % loses
    # 1.5 % by candle 1 and 2.5 % by candle 2: this candle's own loss blocks its entry
    rows = [FLAT, (100.0, 100.0, 97.0, 97.0)] + [(95.0, 95.0, 95.0, 95.0)] * 24
    script = {0: [Signal.open_long(50)], **{i: long() for i in range(2, 26)}}
    result = backtest(rows, script, daily_loss_limit_pct=2)
    # candle 22 closes at 23:00; candle 23 at 00:00 on Jan 2, the new day's first close
    assert blocked(result) == list(range(2, 23))
    assert entries(result) == [0, 23, 24, 25]
    assert result.trades[1].entry_time == T0 + 24 * HOUR
    assert result.rejections[0].reason == (
        "daily_loss_limit_pct: no entries until 2024-01-02 00:00 UTC (equity 9,750.00 is "
        "2.50 % below the day's first close, 10,000.00; limit 2 %)")
    assert result.guard_blocks == {"daily_loss_limit_pct": 21}


def test_daily_loss_limit_measures_from_the_first_close_of_each_utc_day():
    # a 90 % long loses 0.9 % of the equity an hour from 22:00: 2.7 % from 10,000 by 00:00,
    # but 00:00 is Jan 2's first close, a new reference, and only 2 % below that trips
    prices = [100.0] * 21 + [99.0, 98.0, 97.0, 96.0, 95.0, 94.0]
    rows = [(p, p, p, p) for p in prices]
    script = {0: [Signal.open_long(90)], **{i: tiny() for i in range(20, len(rows))}}
    result = backtest(rows, script, daily_loss_limit_pct=2)
    # Jan 1: reference 10,000 at 01:00; 1.8 % at 23:00 (candle 22). Jan 2: 9,730 at 00:00
    # (candle 23), then 0.9 % and 1.9 % below it; 2.8 % at 03:00 (candle 26) blocks
    assert blocked(result) == [26]
    assert entries(result) == [0, 20, 21, 22, 23, 24, 25]
    assert result.rejections[0].reason.startswith(
        "daily_loss_limit_pct: no entries until 2024-01-03 00:00 UTC (equity 9,459.98 is "
        "2.78 % below the day's first close, 9,729.99; limit 2 %)")


# ---- max_drawdown_pct ----------------------------------------------------------------------------
DRAWDOWN = [FLAT, (120.0, 120.0, 120.0, 120.0), (100.0, 100.0, 100.0, 100.0),
            (96.0, 96.0, 96.0, 96.0), (97.0, 97.0, 97.0, 97.0),
            (110.0, 110.0, 110.0, 110.0), (110.0, 110.0, 110.0, 110.0)]


def test_max_drawdown_measures_from_the_peak_and_lifts_within_the_limit():
    # 50 % long at 100: peak 11,000 at 120; 10,000 at 100 is 9.1 % below, 9,800 at 96 is 10.9 %
    script = {0: [Signal.open_long(50)], **{i: tiny() for i in range(2, 7)}}
    result = backtest(DRAWDOWN, script, max_drawdown_pct=10)
    assert blocked(result) == [3, 4]  # 9,850 at 97 is still 10.45 % below
    assert entries(result) == [0, 2, 5, 6]  # 10,500 at 110 is back within 10 %
    assert result.rejections[0].reason == (
        "max_drawdown_pct: no entries until equity is back within 10 % of its peak "
        "11,000.00 (at 2024-01-01 04:00 UTC equity 9,800.00 was 10.91 % below)")
    assert all(t.exit_reason == "end_of_data" for t in result.trades)


def test_max_drawdown_flatten_closes_everything_and_halts_entries():
    script = {0: [Signal.open_long(50)], **{i: tiny() for i in range(2, 7)}}
    result = backtest(DRAWDOWN, script, max_drawdown_pct=10, max_drawdown_flatten=True)
    flattened = [t for t in result.trades if t.exit_reason == "max_drawdown"]
    assert [t.entry_time for t in flattened] == [close(0), close(2)]
    assert {t.exit_time for t in flattened} == {close(3)}  # at the close that tripped
    assert all(t.exit_price == 96.0 for t in flattened)
    # flat equity cannot come back within 10 % of the peak: no entry after the trip
    assert blocked(result) == [3, 4, 5, 6]
    assert result.rejections[0].reason.endswith("(every position closed at market)")
    assert result.final_equity == pytest.approx(result.equity[-1])
    assert len(result.trades) == 2


# ---- forward-run alerts: once per trip ---------------------------------------------------------
def stepped(rows, script, protections: Protections) -> tuple[list, Core]:
    """Step a core with events on (as a forward run does); returns the events and the core."""
    data = candles(rows)
    market = MarketData("BTC/USDT", "1h", data, [])
    market.prepare_steps()
    strategy = Scripted(script)
    strategy.bind(market)
    events: list = []
    core = Core(strategy, market, Portfolio(10_000.0, "BTC/USDT"), FillModel(0, 0, 0),
                DrillDown(None, "1h"), "run1", events.append,
                guards=Guards.build(protections, HOUR))
    for i in range(len(data)):
        market.advance(i)
        core.step(i)
    return events, core


def test_blocked_entries_alert_once_on_trip_and_once_on_lift():
    rows = [FLAT, STOPPED] + [FLAT] * 6
    script = {0: long(stop=95.0), **{i: long() for i in range(1, 7)}}
    events, core = stepped(rows, script, Protections(cooldown=3))
    guard_events = [e for e in events if isinstance(e, GuardTripped | GuardLifted)]
    assert len(core.rejections) == 3
    assert not any(isinstance(e, SignalRejected) for e in events)
    tripped, lifted = guard_events
    assert isinstance(tripped, GuardTripped) and tripped.guard == "cooldown"
    assert tripped.ts == close(1) and tripped.until == close(4)
    assert tripped.reason == core.rejections[0].reason
    assert isinstance(lifted, GuardLifted) and lifted.ts == close(4)
    assert lifted.guard == "cooldown"


def test_guard_state_survives_a_restart_through_json():
    protections = Protections(cooldown=4, stoploss_guard=(2, 10, 6), daily_loss_limit_pct=3,
                              max_drawdown_pct=20, max_open_positions=3)
    hour = HOUR
    one, two = Guards(protections, hour), Guards(protections, hour)
    steps = [(close(0), 10_000.0, ""), (close(1), 9_900.0, "stop_loss"),
             (close(2), 9_600.0, "stop_loss"), (close(3), 9_650.0, "")]
    for ts, equity, reason in steps:
        for guards in (one, two):
            if reason:
                guards.on_exit(ts, reason)
            guards.on_close(ts, equity, 1)
    two_again = Guards(protections, hour)
    two_again.from_state(json.loads(json.dumps(two.to_state())))
    assert two_again.to_state() == one.to_state()
    assert [lock.guard for lock in two_again.active()] == [
        "daily_loss_limit_pct", "stoploss_guard", "cooldown"]
    for i in range(4, 12):
        equity = 9_600.0 + 10 * i
        assert one.on_close(close(i), equity, 1) == two_again.on_close(close(i), equity, 1)
        assert one.check_entry(close(i), 1) == two_again.check_entry(close(i), 1)
    assert one.to_state() == two_again.to_state()
    assert one.blocks["daily_loss_limit_pct"] == 8  # 4 % down: consulted before the others


def test_locks_in_force_are_reported_again_after_a_summarised_catch_up():
    guards = Guards(Protections(cooldown=5, max_open_positions=1), HOUR)
    guards.on_exit(close(0), "stop_loss")
    guards.on_close(close(0), 10_000.0, 1)
    assert guards.check_entry(close(0), 1).guard == "cooldown"
    assert [(name, lock.guard) for name, lock in guards.transitions()] == [
        ("cooldown", "cooldown")]
    assert guards.transitions() == []  # once per trip
    guards.on_close(close(1), 10_000.0, 0)
    guards.reannounce()
    again = guards.events("run1", close(1))
    assert [(type(e), e.guard, e.until) for e in again] == [(GuardTripped, "cooldown",
                                                             close(5))]
    guards.on_close(close(5), 10_000.0, 0)
    assert [type(e) for e in guards.events("run1", close(5))] == [GuardLifted]
