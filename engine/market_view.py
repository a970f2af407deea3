"""What a strategy sees: ``MarketView`` (its ``data``) and one ``FrameView`` per timeframe.

Both wrap the engine's ``MarketData``/``TimeframeData`` and expose closed candles only: the
stored columns, the clocks and the stepping methods stay with the engine (private
attributes), so no public attribute leads to a candle that has not closed (DESIGN §7).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from data.ohlcv import OHLCV_COLUMNS
from data.perp import PERP_COLUMNS
from engine.types import Candle

if TYPE_CHECKING:
    from engine.market import MarketData, TimeframeData


class FrameView:
    """What a strategy sees of one timeframe: closed candles only.

    ``timestamp, open, high, low, close, volume`` are ``SeriesView``s (ms UTC open time;
    prices quote; volume base units); so are the perpetual inputs ``open_interest``,
    ``funding_rate`` and ``cvd`` (NaN where unknown; ``cvd_source`` says ``"taker"`` or
    ``"approx"``, see ``data.perp``); ``latest`` the newest closed candle; ``len()`` how many
    have closed. Nothing here reaches a candle that has not closed.
    """

    __slots__ = ("_frame", "close", "cvd", "cvd_source", "funding_rate", "high", "low", "open",
                 "open_interest", "timeframe", "timestamp", "volume")

    def __init__(self, frame: TimeframeData) -> None:
        self._frame = frame
        self.timeframe = frame.timeframe
        self.cvd_source = frame.cvd_source
        for name in (*OHLCV_COLUMNS, *PERP_COLUMNS):
            setattr(self, name, getattr(frame, name))

    def __len__(self) -> int:
        return self._frame.clock.n

    @property
    def latest(self) -> Candle:
        """The newest closed candle.

        Raises:
            IndexError: when no candle of this timeframe has closed yet.
        """
        return self._frame.latest

    def __repr__(self) -> str:
        return f"<FrameView {self.timeframe} n={len(self)}>"


def frame_of(frames: dict[str, Any], timeframe: str) -> Any:
    """``frames[timeframe]``, or a ``KeyError`` naming the timeframes the strategy declares."""
    try:
        return frames[timeframe]
    except KeyError:
        raise KeyError(f"timeframe {timeframe!r} not loaded; the strategy declares "
                       f"{', '.join(frames)}") from None


class MarketView:
    """What a strategy gets as ``data``: every timeframe of one symbol, closed candles only.

    ``data.base`` is the execution timeframe, ``data["4h"]`` an informative one, ``data.now``
    the close time (ms UTC) of the current base candle, ``data.symbol``/``data.timeframe``.
    The engine's ``MarketData`` (clocks, stored columns, stepping) stays out of reach.
    """

    __slots__ = ("_frames", "_market", "base", "symbol", "timeframe")

    def __init__(self, market: MarketData) -> None:
        # the market holds its view: a weak proxy back keeps that pair free of a reference
        # cycle, so a finished backtest's arrays are freed at once (not at the next gc)
        self._market = weakref.proxy(market)
        self._frames = {tf: FrameView(frame) for tf, frame in market._frames.items()}
        self.symbol = market.symbol
        self.timeframe = market.timeframe
        self.base = self._frames[market.timeframe]

    def __getitem__(self, timeframe: str) -> FrameView:
        return frame_of(self._frames, timeframe)

    @property
    def timeframes(self) -> list[str]:
        """Loaded timeframes, base first."""
        return self._market.timeframes

    @property
    def now(self) -> int:
        """Close time (ms UTC) of the newest closed base candle."""
        return self._market.now

    def __repr__(self) -> str:
        return f"<MarketView {self.symbol} {', '.join(self._frames)}>"
