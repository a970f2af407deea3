"""engine.stats on hand-made trades and curves: exact figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.stats import monthly_returns, performance, period_table, trade_stats
from engine.stats.periods import period_start
from engine.stats.returns import daily_equity
from engine.stats.trades import reason_breakdown, streaks
from engine.types import Trade
from tests.helpers import HOUR, T0

DAY = 24 * HOUR


def trade(k: int, pnl: float, reason: str = "signal", side: str = "long", hours: int = 2,
          exit_at: int | None = None) -> Trade:
    end = exit_at if exit_at is not None else T0 + k * DAY
    return Trade(k, "BTC/USDT", side, 1.0, end - hours * HOUR, 100.0, end, 100.0 + pnl, pnl,
                 0.1, 0.1, reason)


TRADES = [trade(1, 10.0, "take_profit", hours=1), trade(2, -5.0, "stop_loss", "short", 3),
          trade(3, 20.0, "take_profit", hours=5), trade(4, -5.0, "stop_loss"),
          trade(5, -2.0, "trailing_stop", "short", 2), trade(6, 4.0, "signal", hours=4)]


def test_trade_stats_by_reason_side_durations_streaks() -> None:
    s = trade_stats(TRADES)
    assert (s.trades, s.wins, s.losses) == (6, 3, 3)
    assert s.pnl == pytest.approx(22.0) and s.fees == pytest.approx(1.2)
    assert [(g.key, g.trades, g.wins, g.pnl) for g in s.by_reason] == [
        ("take_profit", 2, 2, 30.0), ("stop_loss", 2, 0, -10.0), ("trailing_stop", 1, 0, -2.0),
        ("signal", 1, 1, 4.0)]
    assert [(g.key, g.trades, g.wins, g.pnl) for g in s.by_side] == [
        ("long", 4, 3, 29.0), ("short", 2, 0, -7.0)]
    assert s.avg_win_duration_ms == pytest.approx((1 + 5 + 4) / 3 * HOUR)
    assert s.avg_loss_duration_ms == pytest.approx((3 + 2 + 2) / 3 * HOUR)
    assert s.best.id == 3 and s.worst.id == 2  # by percent of the entry notional
    assert (s.max_win_streak, s.max_loss_streak) == (1, 2)
    assert s.profit_factor == pytest.approx(34.0 / 12.0)
    assert s.expectancy == pytest.approx(22.0 / 6)
    assert reason_breakdown(TRADES)["stop_loss"] == {"trades": 2, "wins": 0, "losses": 2,
                                                     "pnl": -10.0}
    empty = trade_stats([])
    assert empty.trades == 0 and empty.best is None and empty.win_rate_pct is None
    assert streaks([trade(1, 1), trade(2, 1), trade(3, 0), trade(4, 1)]) == (2, 1)


def test_periods_newest_first_with_percent_of_equity_at_the_start() -> None:
    now = T0 + 6 * DAY + 5 * HOUR  # 2024-01-07 05:00 UTC, a Sunday
    rows = period_table(TRADES, "day", 4, now, 1_000.0)
    assert [r.start for r in rows] == [T0 + 6 * DAY, T0 + 5 * DAY, T0 + 4 * DAY, T0 + 3 * DAY]
    assert [(r.trades, r.pnl) for r in rows] == [(1, 4.0), (1, -2.0), (1, -5.0), (1, 20.0)]
    # the 4th: 20 over the equity before it, 1,000 + 10 − 5 = 1,005
    assert rows[3].pct == pytest.approx(20.0 / 1005.0 * 100)
    assert rows[0].pct == pytest.approx(4.0 / (1005.0 + 20 - 5 - 2) * 100)
    weeks = period_table(TRADES, "week", 2, now, 1_000.0)
    assert weeks[0].start == period_start(now, "week") == T0  # 2024-01-01 is a Monday
    assert (weeks[0].trades, weeks[0].pnl) == (6, 22.0) and weeks[1].trades == 0
    months = period_table(TRADES, "month", 2, now, 1_000.0)
    assert months[1].start == 1_701_388_800_000  # 2023-12-01
    assert months[0].end == 1_706_745_600_000  # 2024-02-01
    with pytest.raises(ValueError):
        period_table(TRADES, "year", 2, now, 1.0)


def test_performance_groups_runs_by_strategy_and_symbol() -> None:
    rows = performance([("sma", "BTC/USDT", 1_000.0, TRADES[:2]),
                        ("sma", "BTC/USDT", 1_000.0, TRADES[2:3]),
                        ("rsi", "ETH/USDT", 500.0, TRADES[3:])])
    assert [(r.strategy, r.runs, r.trades, r.wins, r.pnl) for r in rows] == [
        ("sma", 2, 3, 2, 25.0), ("rsi", 1, 3, 1, -3.0)]
    assert rows[0].pct == pytest.approx(25.0 / 2_000 * 100)
    assert rows[1].win_rate_pct == pytest.approx(100 / 3)


def test_daily_and_monthly_returns_of_an_equity_curve() -> None:
    # 12h candles from 2024-01-30 00:00 to 2024-02-02 12:00: closes at 12:00 and 24:00
    ts = np.array([T0 + 29 * DAY + k * 12 * HOUR for k in range(8)])
    equity = np.array([101.0, 102.0, 99.0, 97.0, 103.0, 110.0, 111.0, 121.0])
    days, last = daily_equity(ts, equity, "12h")
    assert days.tolist() == [T0 + d * DAY for d in (29, 30, 31, 32)]
    assert last.tolist() == [102.0, 97.0, 110.0, 121.0]
    months = monthly_returns(ts, equity, "12h", 100.0)
    assert [(m.year, m.month) for m in months] == [(2024, 1), (2024, 2)]
    assert months[1].return_pct == pytest.approx((121 / 97 - 1) * 100)
    assert math.isclose(months[0].return_pct, -3.0)  # 100 → 97
