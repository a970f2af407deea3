"""Look-ahead checks: does a strategy's view of the past change when the future is removed?

Two checks, both in the spirit of Freqtrade's lookahead-analysis:

* ``check_indicators`` (automatic, every backtest): each indicator the strategy registered is
  recomputed on a few truncated copies of its inputs (fixed, seeded cut points in the first
  quarter of the candles, which keeps the cost low) and compared with the full run's values
  before each cut. A causal indicator gives the same values; one that reads later candles
  (``np.roll(close, -1)``, a centred window, a normalisation over the whole series) does not.
  The finding names the indicator, the first value that changed and how many candles before
  the cut it sits: the indicator looked at least that far ahead.
* ``truncation_check`` (``paperbot lookahead``): whole backtests on truncated candles, whose
  trades and signals must equal the full run's up to each cut.

Indicators are the only route from a strategy to unseen candles: ``on_candle`` gets a
``MarketView`` whose series end at the current candle (``engine.market``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from data.ohlcv import OHLCV
from engine.drilldown import LowerSource
from engine.market import MarketData
from engine.types import Trade

#: Seed of the cut points: fixed, so a backtest's check is reproducible.
CUT_SEED = 20_240_101
#: Cut points of the automatic check.
AUTO_CUTS = 3
#: Relative tolerance of the comparison (indicators computed with a different summation order
#: may differ in the last bits).
RTOL = 1e-9


@dataclass(frozen=True, slots=True)
class LookaheadFinding:
    """An indicator whose past values changed when later candles were removed.

    Attributes:
        indicator: the name given to ``self.indicator`` (or the function's name).
        timeframe: the timeframe of its inputs.
        first_time: open time (ms UTC) of the first value that changed.
        ahead: candles of ``timeframe`` between that value and the cut: it read at least
            this many candles ahead.
        cut_time: open time (ms UTC) of the first removed candle.
    """

    indicator: str
    timeframe: str
    first_time: int
    ahead: int
    cut_time: int

    def describe(self) -> str:
        """One line for the CLI summary, the embed and logs."""
        from engine.reporting import iso

        plural = "s" if self.ahead != 1 else ""
        return (f"look-ahead: indicator {self.indicator} ({self.timeframe}) changed at "
                f"{iso(self.first_time)} UTC when the candles from {iso(self.cut_time)} on were "
                f"removed; it reads at least {self.ahead} candle{plural} ahead")

    def to_dict(self) -> dict[str, Any]:
        """JSON fields (times ms UTC)."""
        return asdict(self)


def cut_points(first: int, n: int, count: int, seed: int = CUT_SEED,
               span: float = 0.1) -> list[int]:
    """``count`` distinct base indices ``c`` (candles ``[0, c)`` are kept), seeded.

    Drawn from ``(first, first + span × (n − first)]``: after the warm-up, early enough that
    recomputing on the truncated copies is cheap. Fewer when the range is smaller.
    """
    lo = max(first, 1) + 1
    hi = min(n - 1, first + max(2, int(span * (n - first))))
    if hi < lo:
        return []
    rng = np.random.default_rng(seed)
    picks = rng.choice(hi - lo + 1, size=min(count, hi - lo + 1), replace=False)
    return sorted(lo + int(c) for c in picks)


def _first_difference(full: np.ndarray, short: np.ndarray) -> int | None:
    """Index of the first value of ``short`` that differs from ``full`` (nan equals nan)."""
    head = full[: short.shape[0]]
    same = (head == short) | (np.isnan(head) & np.isnan(short)) | \
        (np.abs(head - short) <= RTOL * np.maximum(1.0, np.abs(head)))
    bad = np.flatnonzero(~same)
    return int(bad[0]) if bad.size else None


def check_indicators(market: MarketData, first: int, cuts: int = AUTO_CUTS,
                     seed: int = CUT_SEED) -> list[LookaheadFinding]:
    """Recompute every registered indicator of ``market`` on truncated inputs.

    Args:
        market: the market of a finished backtest (indicators registered, all candles stored).
        first: index of the first traded base candle (cuts fall after it).
        cuts: how many truncated copies.

    Returns:
        One finding per leaking indicator (the earliest change over the cuts); empty when
        every indicator is causal. An indicator that fails on a short input is skipped.
    """
    n = market.base.stored()
    points = cut_points(first, n, cuts, seed)
    if not points or not market.indicators:
        return []
    sizes_at = [market.visible_at(c - 1) for c in points]
    base_ts = market.base.columns["timestamp"].full
    found: dict[int, LookaheadFinding] = {}
    for k, ind in enumerate(market.indicators):
        frame_ts = market[ind.timeframe].columns["timestamp"].full
        for c, sizes in zip(points, sizes_at, strict=True):
            try:
                outputs = ind.compute(sizes)
            except Exception:  # a user indicator that cannot run on fewer candles
                break
            m = sizes[ind.timeframe]
            for full_col, short in zip(ind.columns, outputs, strict=False):
                i0 = _first_difference(full_col.full, short)
                if i0 is None:
                    continue
                finding = LookaheadFinding(ind.name or "indicator", ind.timeframe,
                                           int(frame_ts[i0]), m - i0, int(base_ts[c]))
                old = found.get(k)
                if old is None or finding.ahead > old.ahead:
                    found[k] = finding
    return [found[k] for k in sorted(found)]


@dataclass(frozen=True, slots=True)
class CutResult:
    """One truncated backtest of ``truncation_check``.

    Attributes:
        cut_time: open time (ms UTC) of the first removed candle.
        compared: trades of the full run that had to appear in the truncated run.
        mismatch: None when they all matched, else the first difference in words.
    """

    cut_time: int
    compared: int
    mismatch: str | None


@dataclass(frozen=True, slots=True)
class LookaheadReport:
    """The full look-ahead check of one strategy on one set of candles."""

    strategy: str
    params: dict[str, Any]
    symbol: str
    timeframe: str
    candles: int
    trades: int
    cuts: list[CutResult]
    indicators: list[LookaheadFinding]

    @property
    def clean(self) -> bool:
        """True when every truncated run matched and no indicator changed."""
        return not self.indicators and all(c.mismatch is None for c in self.cuts)

    def to_dict(self) -> dict[str, Any]:
        """The ``lookahead --json`` object."""
        return {"strategy": self.strategy, "params": self.params, "symbol": self.symbol,
                "timeframe": self.timeframe, "candles": self.candles, "trades": self.trades,
                "clean": self.clean, "cuts": [asdict(c) for c in self.cuts],
                "indicators": [f.to_dict() for f in self.indicators]}


_FIELDS = ("side", "entry_time", "entry_price", "exit_time", "exit_price", "size", "pnl",
           "exit_reason")


def _trade_difference(full: Trade, short: Trade | None) -> str | None:
    from engine.reporting import iso

    if short is None:
        return (f"trade #{full.id} ({full.side} entered {iso(full.entry_time)} UTC) is missing "
                "from the truncated run")
    for name in _FIELDS:
        a, b = getattr(full, name), getattr(short, name)
        same = a == b if isinstance(a, str | int) else abs(a - b) <= RTOL * max(1.0, abs(a))
        if not same:
            return f"trade #{full.id} differs in {name}: {a} with the future, {b} without"
    return None


def compare_trades(full: list[Trade], short: list[Trade], last_open: int) -> tuple[int, str | None]:
    """Compare a truncated run's trades with the full run's (see ``truncation_check``).

    Every full-run trade that exited before ``last_open`` (open time of the truncated run's
    last candle) must be in the truncated run, and every trade the truncated run closed other
    than at the end of its data must equal the full run's trade of the same id.

    Returns:
        (trades compared, the first difference or None).
    """
    by_id = {t.id: t for t in short if t.exit_reason != "end_of_data"}
    must = [t for t in full if t.exit_time < last_open]
    full_by_id = {t.id: t for t in full}
    for t in must:
        problem = _trade_difference(t, by_id.get(t.id))
        if problem:
            return len(must), problem
    for t in by_id.values():
        ref = full_by_id.get(t.id)
        if ref is None:
            return len(must), f"trade #{t.id} exists only without the future"
        problem = _trade_difference(ref, t)
        if problem:
            return len(must), problem
    return len(must), None


def _record_signals(strategy: Any) -> dict[int, list[str]]:
    """Log ``strategy``'s signals by candle open time (ms UTC); returns the live log."""
    log: dict[int, list[str]] = {}
    inner = strategy.on_candle

    def on_candle(data: Any, portfolio: Any) -> Any:
        out = inner(data, portfolio)
        if out:
            log[data.base.timestamp[-1]] = [
                f"{s.action} {s.size_percent:.6g}% sl {s.stop_loss:.8g} tp {s.take_profit:.8g}"
                for s in out]
        return out

    strategy.on_candle = on_candle
    return log


def compare_signals(full: dict[int, list[str]], short: dict[int, list[str]],
                    cut_time: int) -> str | None:
    """The first candle before ``cut_time`` whose signals differ between the runs, in words."""
    from engine.reporting import iso

    before = {t: v for t, v in full.items() if t < cut_time}
    for t in sorted(set(before) | set(short)):
        if before.get(t) != short.get(t):
            return (f"signals at {iso(t)} UTC differ: {before.get(t) or 'none'} with the "
                    f"future, {short.get(t) or 'none'} without")
    return None


def truncation_check(make_strategy: Callable[[], Any], candles: OHLCV, config: Any,
                     lower: LowerSource | None = None, cuts: int = 10,
                     seed: int = CUT_SEED,
                     progress: Callable[[str], None] | None = None) -> LookaheadReport:
    """Backtest on ``candles`` and on ``cuts`` truncated copies; compare the trades.

    ``make_strategy()`` returns a fresh strategy each time; ``config`` is the
    ``BacktestConfig``. Cut points are seeded and spread over the whole traded span.

    Raises:
        NotEnoughData: when the candles leave nothing to trade.
    """
    from engine.backtest import run_backtest

    say = progress or (lambda _text: None)
    strategy = make_strategy()
    full_signals = _record_signals(strategy)
    full = run_backtest(strategy, candles, config, lower, lookahead=True)
    n = len(candles)
    first = full.warmup
    points = cut_points(first, n, cuts, seed, span=1.0)
    results = []
    for k, c in enumerate(points, 1):
        say(f"truncated backtest {k}/{len(points)}")
        strategy = make_strategy()
        signals = _record_signals(strategy)
        short = run_backtest(strategy, candles.take(slice(0, c)), config, lower)
        last_open = int(candles.timestamp[c - 1])
        compared, problem = compare_trades(full.trades, short.trades, last_open)
        problem = problem or compare_signals(full_signals, signals, int(candles.timestamp[c]))
        results.append(CutResult(int(candles.timestamp[c]), compared, problem))
    return LookaheadReport(full.strategy, full.params, config.symbol, config.timeframe,
                           len(full.candles), len(full.trades), results, full.lookahead)
