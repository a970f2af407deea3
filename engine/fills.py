"""The fill model: prices after slippage, fees, and how a candle touches stop-loss/take-profit.

DESIGN §4. Market orders fill at the reference price worsened by ``slippage_bps`` and pay the
taker fee on notional. A take-profit is a resting limit order: it fills at its price (or at a
better open) and pays the maker fee. A stop-loss becomes a market order once touched: it fills
at its price (or at the open, when the candle opened beyond it) worsened by slippage and pays
the taker fee.
"""

from __future__ import annotations

from dataclasses import dataclass

# Outcomes of ``touch`` for one candle and one position.
NONE = 0
STOP = 1  # stop-loss touched inside the candle: fill at the stop price
TAKE = 2  # take-profit touched inside the candle: fill at the take-profit price
STOP_GAP = 3  # candle opened beyond the stop-loss: fill at the open
TAKE_GAP = 4  # candle opened beyond the take-profit: fill at the open
BOTH = 5  # both levels inside the candle: order unknown at this resolution


def touch(direction: int, open_: float, high: float, low: float,
          stop_loss: float, take_profit: float) -> int:
    """How a candle (open/high/low, quote) meets a position's levels (``nan`` = off).

    Returns one of ``NONE, STOP, TAKE, STOP_GAP, TAKE_GAP, BOTH``. The open is the first
    price of the candle, so an open beyond a level settles it before anything else.
    """
    if direction > 0:
        stop_hit = low <= stop_loss
        take_hit = high >= take_profit
        if not (stop_hit or take_hit):
            return NONE
        if stop_hit and open_ <= stop_loss:
            return STOP_GAP
        if take_hit and open_ >= take_profit:
            return TAKE_GAP
    else:
        stop_hit = high >= stop_loss
        take_hit = low <= take_profit
        if not (stop_hit or take_hit):
            return NONE
        if stop_hit and open_ >= stop_loss:
            return STOP_GAP
        if take_hit and open_ <= take_profit:
            return TAKE_GAP
    if stop_hit and take_hit:
        return BOTH
    return STOP if stop_hit else TAKE


@dataclass(frozen=True, slots=True)
class FillModel:
    """Fees and slippage, in basis points (1 bp = 0.01 %; Binance spot's 0.1 % fee is 10).

    Attributes:
        taker_fee_bps: fee on market fills (entries, signal exits, stop-losses).
        maker_fee_bps: fee on take-profit fills.
        slippage_bps: adverse price move on market fills and stop-losses.
    """

    taker_fee_bps: float = 10.0
    maker_fee_bps: float = 10.0
    slippage_bps: float = 0.0

    def __post_init__(self) -> None:
        for name in ("taker_fee_bps", "maker_fee_bps", "slippage_bps"):
            value = getattr(self, name)
            if not (0.0 <= value < 10_000.0):
                raise ValueError(f"{name} must be between 0 and 10000 basis points, got {value}")

    @property
    def taker_rate(self) -> float:
        """Taker fee as a fraction of notional."""
        return self.taker_fee_bps / 10_000.0

    @property
    def maker_rate(self) -> float:
        """Maker fee as a fraction of notional."""
        return self.maker_fee_bps / 10_000.0

    @property
    def slippage_rate(self) -> float:
        """Slippage as a fraction of price."""
        return self.slippage_bps / 10_000.0

    def market_price(self, reference: float, buying: bool) -> float:
        """Fill price of a market order at ``reference``: higher when buying, lower selling."""
        rate = self.slippage_bps / 10_000.0
        return reference * (1.0 + rate) if buying else reference * (1.0 - rate)
