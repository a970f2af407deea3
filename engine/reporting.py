"""Turning results into plain data: trade dicts, the ``backtest --json`` object, trades CSV.

The trade fields are the same everywhere a trade leaves the engine (``backtest --json``,
``paperbot trades --json``, forward-run JSON events): ``id, side, entry_time, exit_time`` (ms
UTC), ``entry_price, exit_price`` (quote), ``size`` (base units), ``pnl, fees`` (quote, pnl net
of fees and funding), ``exit_reason``; on perpetuals also ``funding`` (quote, signed:
negative = paid; ``engine.perp.funding``). Spot trades have no ``funding`` key (a spot position
pays none); the trades CSV always has the column.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from data.timeframes import timeframe_ms
from engine.backtest import BacktestResult
from engine.exit_reasons import exit_breakdown
from engine.types import Exit, Trade, nan_to_none

TRADE_FIELDS: tuple[str, ...] = ("id", "side", "entry_time", "exit_time", "entry_price",
                                 "exit_price", "size", "pnl", "fees", "exit_reason")
CSV_FIELDS: tuple[str, ...] = (*TRADE_FIELDS, "pnl_pct", "entry_fee", "exit_fee", "funding",
                                "stop_loss", "take_profit", "entry_time_utc", "exit_time_utc",
                                "duration_min", "tag")


def iso(ms: int | None) -> str:
    """``1747699200000`` → ``"2025-05-20 00:00"`` (UTC); "" for None."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def trade_dict(trade: Trade) -> dict[str, Any]:
    """The standard trade fields of ``trade`` (see the module docstring)."""
    out: dict[str, Any] = {
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
    if trade.on_perpetual:
        out["funding"] = trade.funding
    return out


def exit_dict(exit_: Exit) -> dict[str, Any]:
    """The fields of one exit (DESIGN §4b): ``position_id, time`` (ms UTC), ``price`` (quote),
    ``size`` (base units), ``reason``, ``pnl`` and ``fee`` (quote)."""
    return {"position_id": exit_.position_id, "time": int(exit_.time), "price": exit_.price,
            "size": exit_.size, "reason": exit_.reason, "pnl": exit_.pnl, "fee": exit_.fee}


def result_json(result: BacktestResult, charts: dict[str, str],
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one JSON object ``paperbot backtest --json`` prints.

    Keys: ``strategy, params, symbol, timeframe, exchange, start, end`` (ms UTC of the traded
    span), ``metrics`` (``engine.metrics.Metrics``), ``trades`` (one per position), ``exits``
    (every fill that reduced a position: ``position_id, time, price, size, reason, pnl,
    fee``), ``exit_reasons`` (``engine.exit_reasons.exit_breakdown``), ``charts`` (paths),
    ``final_equity``, ``drill_down`` ({"resolved": n, "conservative": n}),
    ``rejected_signals`` (a count) and ``rejections`` (``time, action, reason``; entries
    refused by a risk guard included), ``protections`` (the guards the backtest ran with,
    ``engine.risk.Protections.to_dict``), ``guard_blocks`` (entries refused per guard) and
    ``leverage`` (notional / margin; above 1 also ``maintenance_margin_rate``, a fraction).
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
        "exits": [exit_dict(e) for e in result.exits],
        "exit_reasons": exit_breakdown(result.trades, result.exits),
        "charts": charts,
        "final_equity": result.final_equity,
        "drill_down": {"resolved": result.exit_counts.drill_down,
                       "conservative": result.exit_counts.conservative},
        "rejected_signals": len(result.rejections),
        "rejections": [{"time": r.ts, "action": r.action, "reason": r.reason}
                       for r in result.rejections],
        "protections": (result.config.protections.to_dict()
                        if result.config.protections is not None else {}),
        "guard_blocks": dict(result.guard_blocks),
        "leverage": result.config.leverage,
    }
    if result.config.leverage > 1.0:
        out["maintenance_margin_rate"] = result.config.maintenance_margin_rate
    out.update(extra or {})
    return out


EXIT_CSV_FIELDS: tuple[str, ...] = ("position_id", "time", "time_utc", "price", "size",
                                     "reason", "pnl", "fee")


def write_exits_csv(exits: list[Exit], path: Path) -> Path:
    """Write one row per exit (``EXIT_CSV_FIELDS``: every fill that reduced a position) to
    ``path``; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(EXIT_CSV_FIELDS)
        for e in exits:
            row = {**exit_dict(e), "time_utc": iso(e.time)}
            writer.writerow([row[f] for f in EXIT_CSV_FIELDS])
    return path


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
                funding=t.funding,
                stop_loss=nan_to_none(t.stop_loss),
                take_profit=nan_to_none(t.take_profit),
                entry_time_utc=iso(t.entry_time),
                exit_time_utc=iso(t.exit_time),
                duration_min=round(t.duration_ms / 60_000, 2),
                tag=t.tag,
            )
            writer.writerow(["" if row[f] is None else row[f] for f in CSV_FIELDS])
    return path
