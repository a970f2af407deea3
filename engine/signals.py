"""Checks of what a signal asks for, before the broker acts on it (DESIGN §4b).

Each check returns None when the request is valid, else the reason it is refused — the text a
``Rejection`` (and the ``signal_rejected`` alert) carries. Nothing is ever adjusted to fit: a
bad request is refused whole.
"""

from __future__ import annotations

import math

from engine.types import Position, Signal

#: Slack for sums of fractions (float noise of e.g. 1/3 + 1/3 + 1/3).
EPSILON = 1e-9


def check_open(sig: Signal, direction: int, price: float) -> str | None:
    """Why an entry at ``price`` (the fill price, quote) cannot be opened, or None.

    Checks the stop-loss and take-profit sides, the trailing distance (0 < % < 100), each
    scale-out level (on the profit side of the entry, fraction in (0, 1]), their sum (≤ 1 of
    the initial size) and ``max_hold`` (a whole number ≥ 0).
    """
    stop, take = sig.stop_loss, sig.take_profit
    if direction > 0 and (stop >= price or take <= price):
        return (f"long levels must be stop_loss < {price:.8g} < take_profit (got {stop:g}, "
                f"{take:g})")
    if direction < 0 and (stop <= price or take >= price):
        return (f"short levels must be take_profit < {price:.8g} < stop_loss (got {take:g}, "
                f"{stop:g})")
    pct = sig.trailing_stop_pct
    if pct == pct and not 0.0 < pct < 100.0:
        return f"trailing_stop_pct must be between 0 and 100 (exclusive), got {pct:g}"
    if sig.max_hold < 0:
        return f"max_hold must be a whole number of candles >= 0, got {sig.max_hold}"
    total = 0.0
    for level_price, fraction in sig.take_profits:
        if not (math.isfinite(level_price) and math.isfinite(fraction)):
            return "take_profits must be (price, fraction) pairs of numbers"
        if not 0.0 < fraction <= 1.0:
            return f"a take_profits fraction must be in (0, 1] of the initial size, got " \
                   f"{fraction:g}"
        if (level_price - price) * direction <= 0:
            side = "above" if direction > 0 else "below"
            return f"take_profits level {level_price:g} must be {side} the entry {price:.8g}"
        total += fraction
    if total > 1.0 + EPSILON:
        return f"take_profits fractions sum to {total:g}; at most 1 (of the initial size)"
    return None


def check_levels(pos: Position, stop_loss: float | None, take_profit: float | None,
                 price: float) -> str | None:
    """Why ``pos``'s levels cannot be moved to these (None: unchanged, ``nan``: removed), or
    None. A new level must be on its side of ``price`` (the last close, quote), not equal."""
    if stop_loss is None and take_profit is None:
        return "give stop_loss and/or take_profit to update"
    long = pos.direction > 0
    if stop_loss is not None and stop_loss == stop_loss:
        if not (math.isfinite(stop_loss) and stop_loss > 0):
            return f"stop_loss must be a positive price, got {stop_loss:g}"
        if (long and stop_loss >= price) or (not long and stop_loss <= price):
            side = "below" if long else "above"
            return (f"stop_loss {stop_loss:.8g} must be {side} the price {price:.8g} for a "
                    f"{pos.side} position")
    if take_profit is not None and take_profit == take_profit:
        if not (math.isfinite(take_profit) and take_profit > 0):
            return f"take_profit must be a positive price, got {take_profit:g}"
        if (long and take_profit <= price) or (not long and take_profit >= price):
            side = "above" if long else "below"
            return (f"take_profit {take_profit:.8g} must be {side} the price {price:.8g} for "
                    f"a {pos.side} position")
    return None


def update_note(pos: Position | None, sig: Signal) -> str:
    """``"break-even"`` when an update moves the stop to the entry price (for the alert)."""
    if pos is not None and sig.mask & 1 and sig.stop_loss == pos.entry_price:
        return "break-even"
    return ""


def entry_size(sig: Signal, equity: float, price: float) -> tuple[float, str | None]:
    """(size in base units, None) of an entry filled at ``price``: ``size``, or
    ``equity × size_percent / 100 / price``; else (nan, why it is refused)."""
    if not math.isnan(sig.size):
        size = sig.size
    elif not math.isnan(sig.size_percent):
        size = equity * sig.size_percent / 100.0 / price
    else:
        return math.nan, "give size_percent or size"
    if not size > 0:
        return math.nan, f"size must be positive, got {size:g}"
    return size, None


def close_size(sig: Signal, pos: Position) -> tuple[float, str | None]:
    """(base units to exit, None) for ``Signal.close``: all that is left, a ``fraction`` of it,
    or ``size``; else (nan, why it is refused)."""
    if sig.fraction == sig.fraction:  # a fraction of what is left
        if not 0.0 < sig.fraction <= 1.0:
            return math.nan, (f"fraction must be in (0, 1] of the remaining size, got "
                              f"{sig.fraction:g}")
        return pos.size * sig.fraction, None
    if sig.size == sig.size:
        if not 0.0 < sig.size <= pos.size * (1.0 + EPSILON):
            return math.nan, (f"size must be in (0, {pos.size:.8g}] (the remaining size), got "
                              f"{sig.size:g}")
        return min(sig.size, pos.size), None
    return pos.size, None
