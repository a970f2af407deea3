"""Monte Carlo of a backtest's trades: how much of the result was the order of the trades?

Each trade is taken as a return on the equity it started from (``pnl / equity before``, in
exit order; overlapping positions are treated one after the other). ``runs`` paths are drawn,
seeded: **shuffle** permutes the trades (the final return stays the same, the drawdown
path changes) and **bootstrap** draws as many trades with replacement (both change). Reported:
the 5th, 50th and 95th percentiles of the final return and of the maximum drawdown, and a fan
chart of the equity paths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ServiceError

PERCENTILES = (5, 50, 95)
_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,150}$")


@dataclass(frozen=True, slots=True)
class MonteCarloStats:
    """Percentiles (``PERCENTILES``) of one method, in percent."""

    method: str
    final_return_pct: tuple[float, ...]
    max_drawdown_pct: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class MonteCarloReport:
    """What ``monte_carlo`` returns; ``chart`` is the fan PNG (None without charts)."""

    runs: int
    seed: int
    trades: int
    balance: float
    actual_return_pct: float
    actual_drawdown_pct: float
    methods: list[MonteCarloStats]
    chart: Path | None
    title: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain fields (percentiles keyed ``p5, p50, p95``)."""
        def keyed(values: tuple[float, ...]) -> dict[str, float]:
            return {f"p{p}": v for p, v in zip(PERCENTILES, values, strict=True)}
        return {"runs": self.runs, "seed": self.seed, "trades": self.trades,
                "actual_return_pct": self.actual_return_pct,
                "actual_drawdown_pct": self.actual_drawdown_pct,
                "methods": {m.method: {"final_return_pct": keyed(m.final_return_pct),
                                       "max_drawdown_pct": keyed(m.max_drawdown_pct)}
                            for m in self.methods},
                "chart": str(self.chart) if self.chart else None}


def trade_returns(pnls: list[float], balance: float) -> np.ndarray:
    """Each trade's pnl over the equity before it (exit order), shape ``(n,)``."""
    equity = balance + np.concatenate(([0.0], np.cumsum(pnls)[:-1])) if pnls else np.empty(0)
    return np.asarray(pnls, dtype=np.float64) / np.where(equity > 0, equity, np.nan)


def _paths(returns: np.ndarray, balance: float, order: np.ndarray) -> np.ndarray:
    growth = np.cumprod(1.0 + np.nan_to_num(returns[order], nan=-1.0), axis=1)
    return balance * np.concatenate((np.ones((order.shape[0], 1)), growth), axis=1)


def _drawdowns(paths: np.ndarray) -> np.ndarray:
    peaks = np.maximum.accumulate(paths, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nanmin(np.where(peaks > 0, paths / peaks - 1.0, -1.0), axis=1) * 100.0


def monte_carlo(pnls: list[float], balance: float, runs: int = 1000, seed: int = 7,
                chart: Path | None = None, title: str = "",
                theme: str = "dark") -> MonteCarloReport:
    """Shuffle and bootstrap ``pnls`` (quote currency, exit order) ``runs`` times each.

    With ``chart`` (a PNG path) the fan chart is drawn there in ``theme``.

    Raises:
        ServiceError: fewer than two trades, or ``runs`` outside 10–100,000.
    """
    if len(pnls) < 2:
        raise ServiceError(f"Monte Carlo needs at least 2 trades, the backtest has {len(pnls)}")
    if not 10 <= runs <= 100_000:
        raise ServiceError(f"runs must be 10 to 100,000, got {runs}")
    returns = trade_returns(pnls, balance)
    n = returns.size
    rng = np.random.default_rng(seed)
    orders = {
        "shuffle": np.argsort(rng.random((runs, n)), axis=1),
        "bootstrap": rng.integers(0, n, size=(runs, n)),
    }
    actual = _paths(returns, balance, np.arange(n)[None, :])
    methods, all_paths = [], {}
    for name, order in orders.items():
        paths = _paths(returns, balance, order)
        all_paths[name] = paths
        finals = (paths[:, -1] / balance - 1.0) * 100.0
        methods.append(MonteCarloStats(
            name, tuple(float(v) for v in np.percentile(finals, PERCENTILES)),
            tuple(float(v) for v in np.percentile(_drawdowns(paths), PERCENTILES))))
    png = None
    if chart is not None:
        from engine.research.charts import render_fan

        png = render_fan(all_paths, balance, chart, title or "Monte Carlo", theme,
                         f"equity after each trade · {runs:,} runs each · seed {seed}")
    return MonteCarloReport(runs, seed, n, balance,
                            float((actual[0, -1] / balance - 1.0) * 100.0),
                            float(_drawdowns(actual)[0]), methods, png, title)


def check_folder_name(folder: str) -> str:
    """``folder`` when it is a plain folder name under the output folder.

    Raises:
        ServiceError: a name with a path in it.
    """
    if not _FOLDER.match(folder or ""):
        raise ServiceError(f"bad backtest folder name {folder!r}")
    return folder


def monte_carlo_job(folder: Path, runs: int = 1000, seed: int = 7, theme: str = "dark",
                    progress: Callable[[str], None] | None = None) -> MonteCarloReport:
    """Monte Carlo of the backtest written to ``folder`` (its ``backtest.json``).

    Raises:
        ServiceError: no such backtest (the output folder was cleaned), too few trades.
    """
    path = Path(folder) / "backtest.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ServiceError("that backtest's files are gone (the output folder was cleaned); "
                           "run /backtest again") from None
    balance = float(data["metrics"]["starting_balance"])
    title = f"{data['strategy']} {data['symbol']} {data['timeframe']} · Monte Carlo"
    return monte_carlo([float(t["pnl"]) for t in data["trades"]], balance, runs, seed,
                       Path(folder) / "montecarlo.png", title, theme)


def monte_carlo_summary(report: MonteCarloReport) -> str:
    """Lines for the CLI: percentiles per method."""
    lines = [f"Monte Carlo · {report.trades} trades · {report.runs:,} runs per method · seed "
             f"{report.seed} · actual: return {report.actual_return_pct:+.2f} %, max drawdown "
             f"{report.actual_drawdown_pct:.2f} %",
             f"  {'method':<10} {'return p5':>10} {'p50':>9} {'p95':>9}   "
             f"{'max dd p5':>10} {'p50':>9} {'p95':>9}"]
    for m in report.methods:
        r, d = m.final_return_pct, m.max_drawdown_pct
        lines.append(f"  {m.method:<10} {r[0]:>+10.2f} {r[1]:>+9.2f} {r[2]:>+9.2f}   "
                     f"{d[0]:>10.2f} {d[1]:>9.2f} {d[2]:>9.2f}")
    if report.chart:
        lines.append(f"fan chart: {report.chart}")
    return "\n".join(lines)
