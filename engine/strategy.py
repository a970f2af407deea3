"""The strategy API (DESIGN §3).

Write a strategy by subclassing ``Strategy`` in a file under ``strategies/`` (or the extra
strategy directory from settings)::

    class SmaCross(Strategy):
        timeframes = ["1h"]                    # the first is the default base timeframe
        params = {"fast": 20, "slow": 100}

        def on_init(self, data):
            self.fast = self.indicator(sma, data.base.close, self.p.fast)
            self.slow = self.indicator(sma, data.base.close, self.p.slow)

        def on_candle(self, data, portfolio):
            if self.fast[-1] > self.slow[-1] and portfolio.is_flat:
                return [Signal.open_long(size_percent=95)]
            return None

``on_init`` runs once; indicators registered there with ``self.indicator`` are computed
vectorised over the whole series and shown through views that end at the current candle.
``on_candle`` runs on every closed base candle and returns signals (or None). The same code runs
in backtests and forward runs.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, ClassVar

from data.names import shown
from engine.market import MarketData
from engine.portfolio import Portfolio
from engine.series import SeriesView
from engine.sizing import atr_stop, kelly_fraction, risk_size
from engine.types import Signal

__all__ = ["ParamError", "Strategy", "atr_stop", "crossed_above", "crossed_below",
           "kelly_fraction", "risk_size"]

#: The history limit, in base candles: the most a strategy's ``warmup_candles()`` may ask for.
#: Forward runs fetch and keep at most this much history, and backtests load at most this many
#: candles of warm-up before the first traded candle; ``engine.registry.build_strategy``
#: refuses parameters whose warm-up exceeds it.
MAX_WARMUP_CANDLES = 50_000


class ParamError(ValueError):
    """A strategy parameter that is unknown or of the wrong type."""


def _coerce(name: str, default: Any, value: Any) -> Any:
    """``value`` converted to the type of ``default``; float values must be finite.

    Raises:
        ParamError: a value that does not parse as that type, or a nan/inf float.
    """
    kind = type(default)
    if isinstance(value, str):
        text = value.strip()
        try:
            if kind is bool:
                lowered = text.lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if kind is int:
                return int(text)
            if kind is not float:
                return text
            number = float(text)
        except ValueError:
            raise ParamError(
                f"parameter {name} takes {kind.__name__} values (default {default!r}), "
                f"got {shown(value)}"
            ) from None
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ParamError(
            f"parameter {name} takes {kind.__name__} values (default {default!r}), "
            f"got {shown(value)}"
        )
    elif kind is not float:
        return value
    else:
        number = value
    if not math.isfinite(number):
        raise ParamError(f"parameter {name} takes finite numbers (default {default!r}), "
                         f"got {shown(value)}")
    return number


def resolve_params(declared: Mapping[str, Any], overrides: Mapping[str, Any] | None,
                   strategy_name: str = "strategy") -> dict[str, Any]:
    """Declared defaults updated with ``overrides``, each converted to the default's type.

    String values (from the CLI or Discord) are parsed: ``"5"`` → 5 for an int parameter,
    ``"true"``/``"false"`` for a bool.

    Raises:
        ParamError: for an unknown name (with the closest known names) or a value that does
            not fit the declared type.
    """
    resolved = dict(declared)
    for name, value in (overrides or {}).items():
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            known = ", ".join(f"{k}={v!r}" for k, v in declared.items()) or "none"
            raise ParamError(
                f"{strategy_name} has no parameter {name!r}{hint} Parameters: {known}"
            )
        resolved[name] = _coerce(name, declared[name], value)
    return resolved


def parse_param_pairs(pairs: list[str] | str) -> dict[str, str]:
    """``["fast=5", "slow=20"]`` or ``"fast=5 slow=20"`` → ``{"fast": "5", "slow": "20"}``.

    Raises:
        ParamError: for an item without ``=`` or with an empty name.
    """
    items = pairs.split() if isinstance(pairs, str) else list(pairs)
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParamError(f"parameter {item!r} is not key=value (e.g. fast=5)")
        out[key.strip()] = value.strip()
    return out


class Strategy:
    """Base class of every strategy.

    Class attributes to set:
        timeframes: ``[base, informative…]``; the base may be replaced by the user's choice,
            informative timeframes must be whole multiples of the base.
        params: declared parameters with their defaults; the default's type is the type.
        description: one line shown by ``paperbot strategies`` and ``/strategies``.
        protections: risk guards this strategy runs with unless the run says otherwise,
            e.g. ``{"cooldown": 5, "stoploss_guard": "3/24/12"}`` (``engine.risk``; the
            settings' ``PAPERBOT_PROTECT_*`` apply below them, ``--protect`` above).

    Instance attributes: ``self.p`` (resolved params, attribute access), ``self.params``
    (the same as a dict), ``self.timeframes`` (with the chosen base first).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    timeframes: ClassVar[list[str]] = ["1h"]
    params: ClassVar[dict[str, Any]] = {}
    protections: ClassVar[dict[str, Any]] = {}
    #: default search ranges for ``paperbot optimize`` (``engine.research.space``), e.g.
    #: ``{"fast": "5:50", "slow": "20:200:10"}``
    param_space: ClassVar[dict[str, str]] = {}
    #: what the price chart draws: registered indicator name → ``"price"`` (over the candles),
    #: ``"panel"`` (a panel of its own) or ``"panel:<group>"`` (one panel per group). Names may
    #: hold parameters, formatted with the resolved params: ``{"sma{fast}": "price"}``.
    plots: ClassVar[dict[str, str]] = {}
    #: horizontal guide lines of a panel: indicator name → numbers or parameter names,
    #: e.g. ``{"rsi": ("oversold", "overbought")}``
    plot_levels: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def __init__(self, params: Mapping[str, Any] | None = None,
                 timeframe: str | None = None) -> None:
        cls = type(self)
        self.params = resolve_params(cls.params, params, cls.name or cls.__name__)
        self.p = SimpleNamespace(**self.params)
        base = timeframe or cls.timeframes[0]
        self.timeframes = [base] + [tf for tf in cls.timeframes[1:] if tf != base]
        self._market: MarketData | None = None
        self.validate()

    # ---- hooks to override -------------------------------------------------------------------
    def validate(self) -> None:
        """Check parameter combinations; raise ``ParamError`` with a clear message."""

    def warmup_candles(self) -> int:
        """Base candles of history the indicators need before the first trade (default 0)."""
        return 0

    def history_candles(self) -> int:
        """Base candles a forward run keeps in memory (default ``max(1000, 2 × warm-up)``).

        Indicators are recomputed over this rolling window at each candle, so memory and
        time per candle stay flat however long a run lives. Indicators with a finite
        look-back (SMA, Donchian) give the same values as over the full history as long as
        the window covers the look-back; recursive ones (EMA, Wilder's RSI/ATR) keep at least
        twice the warm-up the strategy declared, i.e. more history than a backtest has at its
        first trade. Override for a strategy that needs more.
        """
        return max(1_000, 2 * self.warmup_candles())

    def on_init(self, data: MarketData) -> None:
        """Register indicators (``self.indicator``); called once before the first candle."""

    def on_candle(self, data: MarketData, portfolio: Portfolio) -> list[Signal] | None:
        """Called at the close of every base candle; return signals or None."""
        return None

    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable state to persist in forward runs (default: nothing)."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what ``get_state`` returned."""

    # ---- helpers -------------------------------------------------------------------------------
    def indicator(self, fn: Callable[..., Any], *args: Any, name: str | None = None,
                  **kwargs: Any) -> Any:
        """Register ``fn(*args, **kwargs)`` as an indicator and return its view(s).

        ``fn`` receives numpy arrays for the series arguments (e.g. ``data.base.close``) and
        must return an array of the same length (or a tuple of them), computed causally: value
        ``i`` may use inputs ``0..i`` only. The returned ``SeriesView`` shows values up to the
        current candle of the series' timeframe.

        Raises:
            RuntimeError: outside ``on_init``.
            ValueError: see ``MarketData.add_indicator``.
        """
        if self._market is None:
            raise RuntimeError("register indicators in on_init")
        label = name or getattr(fn, "__name__", "indicator")
        views = self._market.add_indicator(fn, args, kwargs, label)
        self.registered[label] = views
        return views

    def bind(self, market: MarketData) -> None:
        """Attach the market data and run ``on_init`` (engine use).

        The strategy sees ``market.view`` (a ``MarketView``: closed candles only), never the
        engine's ``MarketData``: ``on_init`` gets the view, and the runner
        (``engine.core.Core``) passes the same view to ``on_candle``. Nothing here refers
        back to the strategy, so a finished backtest's arrays are freed at once rather than
        at the next garbage collection.
        """
        self._market = market
        #: indicators registered in ``on_init`` by name (charts draw those in ``plots``)
        self.registered: dict[str, Any] = {}
        self.on_init(market.view)


def crossed_above(a: SeriesView, b: SeriesView) -> bool:
    """True when ``a`` closed above ``b`` on the newest value after being at or below it.

    Values within ``engine.indicators.TIE_TOLERANCE`` (relative) of each other are a tie, not
    a cross (float noise of two averages that are mathematically equal).
    """
    return len(a) > 1 and _side(a[-1], b[-1]) > 0 and _side(a[-2], b[-2]) <= 0


def crossed_below(a: SeriesView, b: SeriesView) -> bool:
    """True when ``a`` closed below ``b`` on the newest value after being at or above it
    (ties within the tolerance do not count, as in ``crossed_above``)."""
    return len(a) > 1 and _side(a[-1], b[-1]) < 0 and _side(a[-2], b[-2]) >= 0


def _side(a: float, b: float) -> int:
    """+1 when ``a`` is above ``b`` beyond the tie tolerance, −1 below, 0 a tie (or nan)."""
    from engine.indicators import TIE_TOLERANCE

    diff = a - b
    tol = TIE_TOLERANCE * max(abs(a), abs(b))
    return 1 if diff > tol else -1 if diff < -tol else 0
