"""Turning results into plain data: trade dicts, the ``backtest --json`` object, trades CSV.

The trade fields are the same everywhere a trade leaves the engine (``backtest --json``,
``paperbot trades --json``, forward-run JSON events): ``id, side, entry_time, exit_time`` (ms
UTC), ``entry_price, exit_price`` (quote), ``size`` (base units), ``pnl, fees`` (quote, pnl net
of fees), ``exit_reason``.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from data.timeframes import timeframe_ms
from engine.backtest import BacktestResult
from engine.types import Trade, nan_to_none

TRADE_FIELDS: tuple[str, ...] = ("id", "side", "entry_time", "exit_time", "entry_price",
                                 "exit_price", "size", "pnl", "fees", "exit_reason")
CSV_FIELDS: tuple[str, ...] = (*TRADE_FIELDS, "pnl_pct", "entry_fee", "exit_fee", "stop_loss",
                                "take_profit", "entry_time_utc", "exit_time_utc",
                                "duration_min", "tag")


def iso(ms: int | None) -> str:
    """``1747699200000`` → ``"2025-05-20 00:00"`` (UTC); "" for None."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def trade_dict(trade: Trade) -> dict[str, Any]:
    """The standard trade fields of ``trade`` (see the module docstring)."""
    return {
        "id": trade.id,
        "side": trade.side,
        "entry_time": int(trade.entry_time),
        "exit_time": int(trade.exit_time),
        "entry_price": trade.entry_price,
        "exit_price": trade.exit_price,
        "size": trade.size,
        "pnl": trade.pnl,
        "fees": trade.fees,
        "exit_reason": trade.exit_reason,
    }


def result_json(result: BacktestResult, charts: dict[str, str],
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one JSON object ``paperbot backtest --json`` prints.

    Keys: ``strategy, params, symbol, timeframe, exchange, start, end`` (ms UTC of the traded
    span), ``metrics`` (``engine.metrics.Metrics``), ``trades``, ``charts`` (paths),
    ``final_equity``, ``drill_down`` ({"resolved": n, "conservative": n}), ``rejected_signals``.
    """
    candles = result.candles
    step = timeframe_ms(result.config.timeframe)
    out: dict[str, Any] = {
        "strategy": result.strategy,
        "params": result.params,
        "symbol": result.config.symbol,
        "timeframe": result.config.timeframe,
        "exchange": result.config.exchange,
        "start": int(candles.timestamp[0]),
        "end": int(candles.timestamp[-1]) + step,
        "candles": len(candles),
        "metrics": result.metrics.to_dict(),
        "trades": [trade_dict(t) for t in result.trades],
        "charts": charts,
        "final_equity": result.final_equity,
        "drill_down": {"resolved": result.exit_counts.drill_down,
                       "conservative": result.exit_counts.conservative},
        "rejected_signals": len(result.rejections),
    }
    out.update(extra or {})
    return out


def write_trades_csv(trades: list[Trade], path: Path) -> Path:
    """Write one row per trade (``CSV_FIELDS``) to ``path``; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        for t in trades:
            row = trade_dict(t)
            row.update(
                pnl_pct=round(t.pnl_pct, 6),
                entry_fee=t.entry_fee,
                exit_fee=t.exit_fee,
                stop_loss=nan_to_none(t.stop_loss),
                take_profit=nan_to_none(t.take_profit),
                entry_time_utc=iso(t.entry_time),
                exit_time_utc=iso(t.exit_time),
                duration_min=round(t.duration_ms / 60_000, 2),
                tag=t.tag,
            )
            writer.writerow(["" if row[f] is None else row[f] for f in CSV_FIELDS])
    return path
