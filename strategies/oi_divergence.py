"""Open-interest divergence on perpetuals: fade a crowd that chases price against taker flow.

Over the last ``lookback`` base candles, compare the price, the cumulative volume delta (CVD:
who crossed the spread, buyers or sellers) and the open interest (positions outstanding):

* price up, CVD down and open interest up by at least ``oi_rise_pct`` % while the funding rate
  is at least ``funding_min`` (longs pay): new positions keep opening while takers are net
  sellers, i.e. late longs are being absorbed. Open a **short**.
* price down, CVD up and open interest up by at least ``oi_rise_pct`` % while funding is at most
  ``-funding_min`` (shorts pay): the mirror case. Open a **long**.

One position at a time; it leaves at its stop-loss / take-profit (``stop_loss_pct`` /
``take_profit_pct`` of the signal candle's close) or after ``max_hold`` candles. A candle whose
open interest, CVD or funding is unknown (NaN: not stored, or stale) gives no signal.

The inputs are ``data.base.open_interest``, ``data.base.cvd`` and ``data.base.funding_rate``:
each value is what was known at that candle's close (docs/perpetuals.md), so the rule uses no
future information. Use it on a perpetual (``BTC/USDT:USDT``) with open interest and funding
fetched (``paperbot data fetch … --open-interest --funding``); on spot data it never trades.
"""

from __future__ import annotations

import numpy as np

from engine.market import MarketData
from engine.portfolio import Portfolio
from engine.strategy import ParamError, Strategy
from engine.types import Signal


def pct_change(values: np.ndarray, period: int) -> np.ndarray:
    """Change over ``period`` values in %: ``100 × (x[i] / x[i − period] − 1)``; NaN for the
    first ``period`` values (causal: value ``i`` uses inputs ``i − period`` and ``i``)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[period:] = 100.0 * (values[period:] / values[:-period] - 1.0)
    return out


def change(values: np.ndarray, period: int) -> np.ndarray:
    """Difference over ``period`` values, ``x[i] − x[i − period]``; NaN for the first
    ``period`` values (causal)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    out[period:] = values[period:] - values[:-period]
    return out


class OiDivergence(Strategy):
    """Shorts crowded longs and longs crowded shorts, from open interest, CVD and funding."""

    name = "oi_divergence"
    description = ("Perpetuals: fade price moves that open interest chases against CVD, "
                   "confirmed by funding")
    timeframes = ["1h"]
    params = {
        "lookback": 24,
        "oi_rise_pct": 1.0,
        "funding_min": 0.0,
        "size_percent": 50.0,
        "stop_loss_pct": 2.0,
        "take_profit_pct": 3.0,
        "max_hold": 48,
    }

    def validate(self) -> None:
        p = self.p
        if p.lookback < 1:
            raise ParamError(f"lookback must be at least 1 candle, got {p.lookback}")
        if p.oi_rise_pct < 0 or p.funding_min < 0:
            raise ParamError("oi_rise_pct and funding_min must be >= 0")
        if not 0 < p.size_percent <= 100:
            raise ParamError(f"size_percent must be in (0, 100], got {p.size_percent}")
        if p.stop_loss_pct < 0 or p.take_profit_pct < 0 or p.max_hold < 0:
            raise ParamError("stop_loss_pct, take_profit_pct and max_hold must be >= 0 "
                             "(0 = off)")

    def warmup_candles(self) -> int:
        return self.p.lookback + 1

    def on_init(self, data: MarketData) -> None:
        b, lookback = data.base, self.p.lookback
        self.price_change = self.indicator(pct_change, b.close, lookback, name="price_change")
        self.oi_change = self.indicator(pct_change, b.open_interest, lookback, name="oi_change")
        self.cvd_change = self.indicator(change, b.cvd, lookback, name="cvd_change")
        self.funding = b.funding_rate

    def on_candle(self, data: MarketData, portfolio: Portfolio) -> list[Signal] | None:
        if not portfolio.is_flat:
            return None
        p = self.p
        price, cvd, oi = self.price_change[-1], self.cvd_change[-1], self.oi_change[-1]
        funding = self.funding[-1]
        if not oi >= p.oi_rise_pct:  # also False for NaN
            return None
        if price > 0 and cvd < 0 and funding >= p.funding_min:
            side = -1
        elif price < 0 and cvd > 0 and funding <= -p.funding_min:
            side = 1
        else:
            return None
        close = data.base.close[-1]
        sl, tp = p.stop_loss_pct / 100.0, p.take_profit_pct / 100.0
        opener = Signal.open_long if side > 0 else Signal.open_short
        return [opener(p.size_percent,
                       stop_loss=close * (1.0 - side * sl) if sl else None,
                       take_profit=close * (1.0 + side * tp) if tp else None,
                       max_hold=p.max_hold)]
