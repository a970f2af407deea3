"""Bounds on the numbers a trader types: fees, slippage and the starting balance.

One validator per kind, shared by the settings (``PAPERBOT_FEE_BPS``…), the backtest request
(CLI ``--fee-bps``…, Discord ``/backtest``) and forward run specs, so every entry point accepts
and refuses the same values.
"""

from __future__ import annotations

import math
import numbers

#: Highest fee or slippage accepted, in basis points (1,000 bp = 10 % of the notional).
MAX_BPS = 1_000.0
#: Highest starting balance accepted, in quote currency (one trillion).
MAX_BALANCE = 1e12


def check_bps(value: float, what: str) -> float:
    """``value`` (basis points) when it is a finite number in ``[0, MAX_BPS]``.

    ``what`` names the value in the message, e.g. ``"--fee-bps"`` or ``"fee"``.

    Raises:
        ValueError: saying the valid range, e.g. ``--fee-bps must be a number from 0 to 1,000
            basis points (10 %), got -1``.
    """
    number = _number(value, what)
    if not (math.isfinite(number) and 0.0 <= number <= MAX_BPS):
        raise ValueError(f"{what} must be a number from 0 to {MAX_BPS:,.0f} basis points "
                         f"({MAX_BPS / 100:g} %), got {number:g}")
    return number


def check_balance(value: float, what: str = "balance") -> float:
    """``value`` (quote currency) when it is finite, above 0 and at most ``MAX_BALANCE``.

    Raises:
        ValueError: saying the valid range.
    """
    number = _number(value, what)
    if not (math.isfinite(number) and 0.0 < number <= MAX_BALANCE):
        raise ValueError(f"{what} must be a number above 0 and at most {MAX_BALANCE:,.0f} "
                         f"(quote currency), got {number:g}")
    return number


def _number(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)
