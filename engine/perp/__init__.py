"""Accounting of perpetual futures: leverage and margin, funding payments, liquidation.

* ``leverage``: the leverage a run or backtest may use (1 on spot; at most the exchange's
  maximum for the symbol) and the maintenance margin rate of each symbol;
* ``liquidation``: the isolated-margin liquidation price of a position;
* ``funding``: which funding settlements fall in which base candle, and the payments they
  make on open positions.

Everything here is numpy-only: forward runs import it (docs/perpetuals.md).
"""

from engine.perp.funding import FundingSchedule, pay_funding
from engine.perp.leverage import LeverageError, MarginRules, check_leverage, margin_rules
from engine.perp.liquidation import liquidation_price

__all__ = ["FundingSchedule", "LeverageError", "MarginRules", "check_leverage",
           "liquidation_price", "margin_rules", "pay_funding"]
