"""Metric formulas on hand-made inputs (docs/backtesting.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.metrics import compute_metrics, drawdown_series
from engine.types import Trade
from tests.helpers import HOUR, T0


def trade(pnl: float, entry=100.0, size=1.0, hours=2, fees=0.2) -> Trade:
    return Trade(id=1, symbol="BTC/USDT", side="long", size=size, entry_time=T0,
                 entry_price=entry, exit_time=T0 + hours * HOUR, exit_price=entry + pnl,
                 pnl=pnl, entry_fee=fees / 2, exit_fee=fees / 2, exit_reason="signal")


TS = np.array([T0 + i * HOUR for i in range(4)])
CLOSES = np.array([100.0, 110.0, 90.0, 120.0])


def test_returns_drawdown_sharpe_sortino_exact():
    equity = np.array([100.0, 120.0, 90.0, 130.0])
    m = compute_metrics([], equity, TS, "1h", 100.0, CLOSES, exposed_candles=3)
    assert m.total_return_pct == pytest.approx(30.0)
    assert m.max_drawdown_pct == pytest.approx(-25.0)  # 120 → 90
    assert m.max_drawdown_start == T0 + 2 * HOUR  # close of the candle where equity was 120
    assert m.max_drawdown_end == T0 + 3 * HOUR
    returns = np.array([0.0, 0.2, -0.25, 130 / 90 - 1])
    scale = math.sqrt(8760)
    assert m.sharpe_per_candle == pytest.approx(returns.mean() / returns.std(ddof=1) * scale)
    downside = math.sqrt(np.mean(np.minimum(returns, 0) ** 2))
    assert m.sortino_per_candle == pytest.approx(returns.mean() / downside * scale)
    assert m.sharpe is None and m.returns_period == "1d"  # one UTC day: no daily returns
    assert m.short_window and m.span_days == pytest.approx(4 / 24)
    years = 4 * HOUR / (365 * 24 * HOUR)
    assert m.cagr_pct == pytest.approx((1.3 ** (1 / years) - 1) * 100)
    assert m.calmar == pytest.approx(m.cagr_pct / 25.0)
    assert m.exposure_pct == pytest.approx(75.0)
    assert m.buy_and_hold_return_pct == pytest.approx(20.0)
    assert drawdown_series(equity).tolist() == pytest.approx([0, 0, -0.25, 0])


def test_trade_statistics():
    trades = [trade(10.0, hours=1), trade(-5.0, hours=3), trade(20.0, hours=2),
              trade(-5.0, hours=2)]
    m = compute_metrics(trades, np.array([100.0, 120.0]), TS[:2], "1h", 100.0, CLOSES[:2], 1)
    assert m.num_trades == 4
    assert m.win_rate_pct == pytest.approx(50.0)
    assert m.profit_factor == pytest.approx(30.0 / 10.0)
    assert m.expectancy == pytest.approx(5.0)
    assert m.avg_win == pytest.approx(15.0) and m.avg_loss == pytest.approx(-5.0)
    assert m.best_trade_pct == pytest.approx(20.0) and m.worst_trade_pct == pytest.approx(-5.0)
    assert m.avg_duration_ms == pytest.approx(2 * HOUR)
    assert m.fees_paid == pytest.approx(0.8)


def test_profit_factor_is_infinite_without_losses_and_serialises():
    m = compute_metrics([trade(5.0)], np.array([100.0, 105.0]), TS[:2], "1h", 100.0,
                        CLOSES[:2], 1)
    assert m.profit_factor == math.inf
    assert m.to_dict()["profit_factor"] == "inf"


def test_no_trades_and_flat_curve_give_undefined_not_zero():
    m = compute_metrics([], np.array([100.0, 100.0, 100.0]), TS[:3], "1h", 100.0, CLOSES[:3], 0)
    assert m.sharpe is None and m.sortino is None and m.win_rate_pct is None
    assert m.profit_factor is None and m.max_drawdown_pct == 0.0 and m.calmar is None
    assert m.num_trades == 0 and m.total_return_pct == 0.0


def test_sharpe_and_sortino_come_from_daily_returns_whatever_the_timeframe():
    # three UTC days of 12h candles; the equity at each day's last close drives the ratios
    ts = np.array([T0 + i * 12 * HOUR for i in range(6)])
    equity = np.array([101.0, 102.0, 99.0, 97.0, 103.0, 110.0])
    m = compute_metrics([], equity, ts, "12h", 100.0, np.ones(6), 0)
    daily = np.array([102 / 100 - 1, 97 / 102 - 1, 110 / 97 - 1])
    assert m.returns_period == "1d"
    assert m.sharpe == pytest.approx(daily.mean() / daily.std(ddof=1) * math.sqrt(365))
    downside = math.sqrt(np.mean(np.minimum(daily, 0) ** 2))
    assert m.sortino == pytest.approx(daily.mean() / downside * math.sqrt(365))
    per_candle = np.diff(np.concatenate(([100.0], equity))) / np.concatenate(([100.0],
                                                                             equity[:-1]))
    assert m.sharpe_per_candle == pytest.approx(
        per_candle.mean() / per_candle.std(ddof=1) * math.sqrt(730))
    # the same equity on 1h candles closing at the same times: the same daily figure
    hourly = np.array([T0 + 11 * HOUR + i * 12 * HOUR for i in range(6)])
    assert compute_metrics([], equity, hourly, "1h", 100.0, np.ones(6), 0).sharpe == \
        pytest.approx(m.sharpe)
    assert m.to_dict()["short_window"] is True and m.to_dict()["sharpe_per_candle"] is not None
