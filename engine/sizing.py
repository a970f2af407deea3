"""Position sizing helpers for strategies (pure functions; part of the strategy API).

    from engine.strategy import atr_stop, kelly_fraction, risk_size

Units: prices in quote currency, sizes in base units, fees in basis points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from engine.types import Trade


def risk_size(equity: float, risk_pct: float, entry: float, stop: float,
              fee_bps: float = 0.0, slippage_bps: float = 0.0) -> float:
    """The size (base units) whose loss at the stop, fees included, is ``risk_pct`` % of
    ``equity`` — fixed-fractional sizing (R. Vince, *Portfolio Management Formulas*, 1990;
    Van K. Tharp's "1 % risk" rule).

    The loss per unit is ``|entry − stop'| + (entry + stop') × fee``, where ``stop'`` is the
    stop worsened by slippage and ``fee = fee_bps / 10,000`` (the entry and the stop exit are
    both taker fills). So ``size = equity × risk_pct / 100 / loss per unit``.

    Example: equity 10,000, risk 1 %, entry 100, stop 98, fee 10 bp → loss per unit
    2 + 198 × 0.001 = 2.198 → size 45.496.

    Raises:
        ValueError: for a non-positive price, a stop equal to the entry, a negative risk or
            non-finite inputs.
    """
    values = (equity, risk_pct, entry, stop, fee_bps, slippage_bps)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"risk_size needs finite numbers, got {values}")
    if entry <= 0 or stop <= 0 or stop == entry:
        raise ValueError(f"risk_size needs positive prices and a stop away from the entry "
                         f"(entry {entry}, stop {stop})")
    if risk_pct < 0 or equity < 0:
        raise ValueError("risk_size needs equity >= 0 and risk_pct >= 0")
    slip = slippage_bps / 10_000.0
    worst = stop * (1.0 - slip) if stop < entry else stop * (1.0 + slip)
    per_unit = abs(entry - worst) + (entry + worst) * fee_bps / 10_000.0
    return equity * risk_pct / 100.0 / per_unit


def atr_stop(entry: float, atr: float, multiple: float = 2.0, side: str = "long") -> float:
    """A stop ``multiple`` × ATR from ``entry``: below it for a long, above for a short
    (J. W. Wilder, *New Concepts in Technical Trading Systems*, 1978; the Turtles' 2N stop).

    Raises:
        ValueError: for a non-finite or non-positive ATR or multiple, or an unknown side.
    """
    if not (math.isfinite(atr) and atr > 0 and math.isfinite(multiple) and multiple > 0):
        raise ValueError(f"atr_stop needs a positive ATR and multiple, got {atr}, {multiple}")
    if side not in ("long", "short"):
        raise ValueError(f"side must be 'long' or 'short', got {side!r}")
    return entry - multiple * atr if side == "long" else entry + multiple * atr


def kelly_fraction(trades: Iterable[Trade], cap: float = 0.25) -> float:
    """The Kelly fraction of equity to risk, from closed trades, capped to ``[0, cap]``.

    ``f* = W − (1 − W) / R`` with ``W`` the win rate and ``R`` the ratio of the average
    winning to the average losing return (``pnl_pct``) — J. L. Kelly, "A New Interpretation
    of Information Rate" (1956), in the trading form of E. O. Thorp, "The Kelly Criterion in
    Blackjack, Sports Betting and the Stock Market" (2006). Full Kelly is volatile; the cap
    (a quarter by default) keeps a fractional Kelly. No trades or no wins → 0; wins without
    losses → ``cap``.
    """
    returns = [t.pnl_pct for t in trades]
    wins = [r for r in returns if r > 0]
    losses = [-r for r in returns if r < 0]
    if not returns or not wins:
        return 0.0
    if not losses:
        return cap
    win_rate = len(wins) / len(returns)
    ratio = (sum(wins) / len(wins)) / (sum(losses) / len(losses))
    return min(cap, max(0.0, win_rate - (1.0 - win_rate) / ratio))
