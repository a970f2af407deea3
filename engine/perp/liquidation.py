"""Liquidation of isolated-margin positions.

Formula (Bybit help center, "Liquidation Price (USDT Contract)", isolated margin, no extra
margin added, maintenance margin deduction 0 — the tier-1 case):

    long:  liquidation = entry − (initial margin − maintenance margin) / size
                       = entry × (1 − 1/leverage + mmr)
    short: liquidation = entry + (initial margin − maintenance margin) / size
                       = entry × (1 + 1/leverage − mmr)

with initial margin = entry × size / leverage and maintenance margin = entry × size × mmr.
Bybit's own example: a 1 BTC long at 20,000 USDT, 50x, mmr 0.5 % → 20,000 − (400 − 100) =
19,700 USDT. Fees to close are left out of the level (Bybit notes the same small difference).

How the engine uses it (``engine.core``): the level is checked intrabar like a stop-loss
(DESIGN §4) — it is part of the position's stop in force (``Position.active_stop``), so a
stop-loss beyond it is never reached; the position leaves at the liquidation price, reason
``liquidation``, taker fee, no slippage. A candle that opens beyond it (a gap) fills at the
liquidation price too: isolated margin caps the loss at the position's margin, and the engine
does not charge the gap beyond it. Leverage 1 has no liquidation level.
"""

from __future__ import annotations

import math


def liquidation_price(direction: int, entry: float, leverage: float, mmr: float) -> float:
    """The liquidation price (quote) of a position entered at ``entry`` (quote).

    Args:
        direction: +1 long, -1 short.
        entry: the entry fill price (after slippage), quote.
        leverage: notional / margin; ≤ 1 means no liquidation (``nan``).
        mmr: maintenance margin rate, a fraction (0.005 = 0.5 %).
    """
    if not leverage > 1.0:
        return math.nan
    if direction > 0:
        return entry * (1.0 - 1.0 / leverage + mmr)
    return entry * (1.0 + 1.0 / leverage - mmr)
