"""Perpetuals accounting on hand-made candles: funding payments, leverage and margin,
liquidation — exact amounts (docs/perpetuals.md has the same worked numbers)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from data.cache import cache_path, write_candles
from data.perp_store import FUNDING, funding_path, merge_series
from engine.backtest import BacktestConfig, run_backtest
from engine.backtest_request import BacktestRequest, check_request
from engine.cli.main import main
from engine.errors import ServiceError
from engine.fills import FillModel
from engine.perp import FundingSchedule, MarginRules, check_leverage, liquidation_price
from engine.settings import load_settings
from engine.store.rows import position_from_row, position_row, trade_from_row, trade_row
from engine.types import Position, Signal, Trade
from tests.helpers import HOUR, T0, Scripted, candles

PERP = "BTC/USDT:USDT"
NO_COSTS = FillModel(0, 0, 0)


def run(rows, script, leverage=1.0, mmr=0.005, funding=None, fills=NO_COSTS, symbol=PERP):
    config = BacktestConfig(symbol, "1h", balance=10_000.0, fills=fills, leverage=leverage,
                            maintenance_margin_rate=mmr, trade_start=T0)
    return run_backtest(Scripted(script), candles(rows), config, funding=funding)


def settlements(*pairs):
    return (np.array([t for t, _ in pairs], dtype=np.int64),
            np.array([r for _, r in pairs], dtype=np.float64))


# ---- funding -----------------------------------------------------------------------------------

def test_funding_on_a_long_and_a_short_across_two_settlements():
    # 1h candles from 00:00; settlements at 08:00 (+0.1 %) and 16:00 (−0.05 %); the candle
    # holding each is the one closing at it (07:00 → 08:00 and 15:00 → 16:00); its close is
    # the price: 110 at 08:00, 90 at 16:00
    rows = [(100, 100, 100, 100)] * 24
    rows[7] = (100, 110, 100, 110)
    rows[15] = (100, 100, 90, 90)
    funding = settlements((T0 + 8 * HOUR, 0.001), (T0 + 16 * HOUR, -0.0005))
    script = {0: [Signal.open_long(size=2.0), Signal.open_short(size=3.0)],
              20: [Signal.close_all()]}
    result = run(rows, script, funding=funding)
    long_, short = sorted(result.trades, key=lambda t: t.side)
    # long: pays 2 × 110 × 0.001 = 0.22 at 08:00, receives 2 × 90 × 0.0005 = 0.09 at 16:00
    assert long_.funding == pytest.approx(-0.22 + 0.09)
    # short: receives 3 × 110 × 0.001 = 0.33, pays 3 × 90 × 0.0005 = 0.135
    assert short.funding == pytest.approx(0.33 - 0.135)
    assert long_.pnl == pytest.approx(0.0 + long_.funding)  # flat price, no costs: funding only
    assert short.pnl == pytest.approx(short.funding)
    assert result.final_equity == pytest.approx(10_000.0 - 0.13 + 0.195)
    assert result.metrics.funding_paid == pytest.approx(0.13 - 0.195)
    # the equity curve books each payment at its candle's close
    assert result.equity[7] == pytest.approx(10_000.0 + 2 * 10 - 3 * 10 - 0.22 + 0.33)


def test_funding_is_paid_only_by_positions_open_at_the_settlement():
    rows = [(100, 100, 100, 100)] * 12
    rows[7] = (100, 100, 94, 100)  # the settlement candle also hits the stop of position #2
    funding = settlements((T0 + 8 * HOUR, 0.01))
    script = {0: [Signal.open_long(size=1.0)],                     # held through: pays 1.00
              1: [Signal.open_long(size=1.0, stop_loss=95.0)],     # stopped inside: pays 0
              7: [Signal.open_long(size=1.0)]}                     # opened at 08:00: pays 0
    result = run(rows, script, funding=funding)
    by_id = {t.id: t for t in result.trades}
    assert by_id[1].funding == pytest.approx(-1.0)
    assert by_id[2].exit_reason == "stop_loss" and by_id[2].funding == 0.0
    assert by_id[3].funding == 0.0


def test_the_schedule_puts_each_settlement_in_the_candle_closing_at_or_after_it():
    ts = T0 + HOUR * np.arange(24, dtype=np.int64)
    schedule = FundingSchedule.for_candles(
        ts, "1h", np.array([T0 - HOUR, T0 + 8 * HOUR, T0 + 8 * HOUR + 1, T0 + 30 * HOUR]),
        np.array([0.5, 0.001, 0.002, 0.7]))
    assert schedule.due == {T0 + 7 * HOUR: 0.001, T0 + 8 * HOUR: 0.002}
    daily = FundingSchedule.for_candles(np.array([T0, T0 + 24 * HOUR]), "1d",
                                        np.array([T0 + 8 * HOUR, T0 + 16 * HOUR]),
                                        np.array([0.001, 0.002]))
    assert daily.due == {T0: pytest.approx(0.003)}  # both at the daily close


def test_spot_pays_no_funding_and_keeps_its_json():
    rows = [(100, 100, 100, 100)] * 12
    result = run(rows, {0: [Signal.open_long(size=1.0)]}, symbol="BTC/USDT")
    assert result.trades[0].funding == 0.0 and result.metrics.funding_paid == 0.0
    from engine.reporting import trade_dict

    assert "funding" not in trade_dict(result.trades[0])


# ---- leverage and margin -----------------------------------------------------------------------

def test_margin_is_notional_over_leverage():
    rows = [(100, 100, 100, 100)] * 3
    script = {0: [Signal.open_long(300.0)]}  # a notional of 3 × equity
    result = run(rows, script, leverage=5.0)
    assert result.trades[0].size == pytest.approx(300.0) and not result.rejections
    refused = run(rows, script, leverage=2.0)  # 30,000 / 2 = 15,000 of margin > 10,000
    assert not refused.trades
    assert refused.rejections[0].reason == ("needs 15000.00 margin incl. fee, free margin is "
                                            "10000.00")


def test_margin_reserved_by_an_open_position():
    from engine.portfolio import Portfolio

    pf = Portfolio(10_000.0, PERP, leverage=4.0)
    pos = pf.open("long", 2.0, 5_000.0, 0.0, T0)
    pf.mark_price = 5_000.0
    assert pos.margin == 2_500.0 and pf.free_margin == 7_500.0


def test_leverage_is_refused_on_spot_and_above_the_maximum(tmp_path):
    settings = load_settings(data_dir=tmp_path, offline=True)
    cases = [
        (BacktestRequest("sma_cross", "BTC/USDT", exchange="bybit", leverage=2),
         "leverage 2 needs a perpetual: BTC/USDT is spot, which trades at leverage 1 (use "
         "BTC/USDT:USDT for the perpetual)"),
        (BacktestRequest("sma_cross", PERP, exchange="bybit", leverage=101),
         "leverage 101 is above the maximum of 100x for BTC/USDT:USDT on bybit (paperbot's "
         "table, docs/perpetuals.md)"),
        (BacktestRequest("sma_cross", PERP, exchange="binanceusdm", leverage=126),
         "leverage 126 is above the maximum of 125x for BTC/USDT:USDT on binanceusdm "
         "(paperbot's table, docs/perpetuals.md)"),
        (BacktestRequest("sma_cross", "SOL/USDT:USDT", exchange="bybit", leverage=25),
         "leverage 25 is above the maximum of 20x for SOL/USDT:USDT on bybit (paperbot's "
         "default for symbols not in its table)"),
        (BacktestRequest("sma_cross", PERP, exchange="bybit", leverage=float("nan")),
         "leverage must be a number from 1 to 100 for BTC/USDT:USDT on bybit, got nan"),
    ]
    for request, message in cases:
        with pytest.raises(ServiceError) as caught:
            check_request(request, settings)
        assert str(caught.value) == message
    assert check_leverage(None, "bybit", "BTC/USDT") == 1.0
    assert check_leverage(1, "binance", "BTC/USDT") == 1.0
    assert check_leverage(100, "bybit", PERP) == 100.0


def test_backtest_cli_refuses_spot_leverage_in_one_line(capsys, tmp_path):
    code = main(["backtest", "--strategy", "sma_cross", "--symbol", "BTC/USDT", "--leverage",
                 "3", "--data-dir", str(tmp_path), "--offline"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == ("error: leverage 3 needs a perpetual: BTC/USDT is spot, which trades at "
                   "leverage 1 (use BTC/USDT:USDT for the perpetual)\n")


# ---- liquidation -------------------------------------------------------------------------------

def test_liquidation_price_follows_bybits_formula():
    # Bybit's example: 1 BTC long at 20,000 USDT, 50x, mmr 0.5 % → 20,000 − (400 − 100)
    assert liquidation_price(1, 20_000.0, 50.0, 0.005) == pytest.approx(19_700.0)
    assert liquidation_price(-1, 20_000.0, 50.0, 0.005) == pytest.approx(20_300.0)
    assert math.isnan(liquidation_price(1, 20_000.0, 1.0, 0.005))
    assert MarginRules(10.0, 0.005).liquidation_price(1, 100.0) == pytest.approx(90.5)


CRASH = [(100, 100, 100, 100), (100, 101, 99, 100), (100, 100, 85, 88), (88, 90, 80, 85)]


def test_a_crash_liquidates_a_leveraged_long_at_its_liquidation_price():
    fills = FillModel(10, 10, 10)  # the liquidation pays the taker fee, without slippage
    result = run(CRASH, {0: [Signal.open_long(size=10.0)]}, leverage=10.0, fills=fills)
    trade = result.trades[0]
    entry = 100.0 * 1.001
    liq = entry * (1 - 0.1 + 0.005)
    assert trade.exit_reason == "liquidation" and trade.exit_time == T0 + 2 * HOUR
    assert trade.exit_price == pytest.approx(liq)
    assert trade.pnl == pytest.approx((liq - entry) * 10 - entry * 10 * 0.001 - liq * 10 * 0.001)
    margin = entry * 10 / 10
    assert -trade.pnl < margin  # the margin, less its maintenance share, is what is lost


def test_a_stop_above_the_liquidation_price_wins():
    result = run(CRASH, {0: [Signal.open_long(size=10.0, stop_loss=95.0)]}, leverage=10.0)
    assert result.trades[0].exit_reason == "stop_loss"
    assert result.trades[0].exit_price == 95.0
    beyond = run(CRASH, {0: [Signal.open_long(size=10.0, stop_loss=89.0)]}, leverage=10.0)
    assert beyond.trades[0].exit_reason == "liquidation"  # a stop below it is never reached
    assert beyond.trades[0].exit_price == pytest.approx(90.5)
    assert beyond.trades[0].stop_loss == 89.0  # the trade keeps its own stop, not the level


def test_a_gap_through_the_liquidation_price_fills_at_it():
    rows = [(100, 100, 100, 100), (80, 82, 79, 81)]  # opens 19.5 % lower
    result = run(rows, {0: [Signal.open_long(size=10.0, stop_loss=95.0)]}, leverage=10.0)
    trade = result.trades[0]
    assert trade.exit_reason == "liquidation" and trade.exit_price == pytest.approx(90.5)
    assert trade.pnl == pytest.approx((90.5 - 100.0) * 10)  # not (80 − 100) × 10


def test_a_short_is_liquidated_on_a_squeeze_and_leverage_1_never_is():
    rows = [(100, 100, 100, 100), (100, 112, 99, 111), (111, 111, 110, 110)]
    short = run(rows, {0: [Signal.open_short(size=1.0)]}, leverage=10.0).trades[0]
    assert short.exit_reason == "liquidation" and short.exit_price == pytest.approx(109.5)
    crash = [(100, 100, 100, 100), (100, 100, 1, 2)]
    spot_like = run(crash, {0: [Signal.open_long(size=1.0)]}, leverage=1.0).trades[0]
    assert spot_like.exit_reason == "end_of_data" and spot_like.exit_price == 2.0


# ---- storage and reports -----------------------------------------------------------------------

def test_funding_and_liquidation_level_survive_the_store_rows():
    pos = Position(3, PERP, "short", -1, 0.5, 100.0, T0, 0.05, stop_loss=104.0, margin=5.0,
                   funding=-1.25, liquidation_price=109.5)
    back = position_from_row(dict(zip(("run_id", "id", "side", "size", "entry_price",
                                       "entry_time", "entry_fee", "stop_loss", "take_profit",
                                       "margin", "tag", "initial_size", "trailing_stop_pct",
                                       "trailing_stop", "best_price", "take_profits",
                                       "max_hold", "candles_held", "realised_pnl",
                                       "exit_fees", "exited_size", "exit_value",
                                       "entry_fee_settled", "funding", "liquidation_price"),
                                      position_row("r", pos), strict=True)) | {})
    assert (back.funding, back.liquidation_price, back.active_stop) == (-1.25, 109.5, 104.0)
    trade = Trade(3, PERP, "short", 0.5, T0, 100.0, T0 + HOUR, 109.5, -6.0, 0.05, 0.05,
                  "liquidation", funding=-1.25)
    keys = ("run_id", "id", "side", "size", "entry_time", "entry_price", "exit_time",
            "exit_price", "pnl", "entry_fee", "exit_fee", "exit_reason", "stop_loss",
            "take_profit", "tag", "settled_on_recovery", "funding")
    assert trade_from_row(_Row(dict(zip(keys, trade_row("r", trade), strict=True)))).funding \
        == -1.25


class _Row(dict):
    """A dict that answers ``keys()`` like ``sqlite3.Row``."""


def test_backtest_json_shows_funding_leverage_and_liquidations(capsys, tmp_path):
    rows = [(100, 100, 100, 100)] * 30
    rows[20] = (100, 100, 80, 85)  # liquidates a 10x long
    write_candles(cache_path(tmp_path, "bybit", PERP, "1h"), candles(rows).to_frame())
    merge_series(funding_path(tmp_path, "bybit", PERP), FUNDING,
                 np.array([T0 + 8 * HOUR, T0 + 16 * HOUR]), np.array([0.001, 0.001]))
    strategy = tmp_path / "strategies"
    strategy.mkdir()
    (strategy / "hold_long.py").write_text(
        "from engine.strategy import Strategy\nfrom engine.types import Signal\n\n"
        "class HoldLong(Strategy):\n    timeframes = ['1h']\n\n"
        "    def on_candle(self, data, portfolio):\n"
        "        if not portfolio.positions and len(data.base) < 10:\n"
        "            return [Signal.open_long(500.0)]\n")
    code = main(["backtest", "--strategy", "hold_long", "--symbol", PERP, "--exchange", "bybit",
                 "--timeframe", "1h", "--leverage", "10", "--fee-bps", "0", "--data-dir",
                 str(tmp_path), "--strategy-dir", str(strategy), "--offline", "--json",
                 "--no-charts", "--db", str(tmp_path / "none.db")])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    trade = data["trades"][0]
    size = 10_000.0 * 5 / 100.0
    assert trade["funding"] == pytest.approx(-2 * size * 100.0 * 0.001)
    assert trade["exit_reason"] == "liquidation" and trade["exit_price"] == pytest.approx(90.5)
    assert trade["pnl"] == pytest.approx((90.5 - 100.0) * size + trade["funding"])
    assert data["leverage"] == 10.0 and data["maintenance_margin_rate"] == 0.005
    assert data["metrics"]["funding_paid"] == pytest.approx(-trade["funding"])
    assert data["exit_reasons"]["liquidation"]["trades"] == 1
