"""How positions, trades and exits map to rows of the run database (and back).

Levels that are off (``nan``) are stored as NULL; scale-out levels as a JSON list. Rows written
by an older schema (before the position-management columns) read back with the defaults: the
initial size is the size, the best price the entry price, no trailing stop or time exit; and
before the perpetual columns (v7): no funding, no liquidation level.
"""

from __future__ import annotations

import json
from typing import Any

from engine.types import Exit, Position, Trade, nan_to_none, none_to_nan

POSITION_COLUMNS = ("id", "side", "size", "entry_price", "entry_time", "entry_fee", "stop_loss",
                    "take_profit", "margin", "tag", "initial_size", "trailing_stop_pct",
                    "trailing_stop", "best_price", "take_profits", "max_hold", "candles_held",
                    "realised_pnl", "exit_fees", "exited_size", "exit_value",
                    "entry_fee_settled", "funding", "liquidation_price")
TRADE_COLUMNS = ("id", "side", "size", "entry_time", "entry_price", "exit_time", "exit_price",
                 "pnl", "entry_fee", "exit_fee", "exit_reason", "stop_loss", "take_profit",
                 "tag", "settled_on_recovery", "funding")
EXIT_COLUMNS = ("position_id", "time", "price", "size", "reason", "pnl", "fee",
                "settled_on_recovery")


def insert_sql(table: str, columns: tuple[str, ...], replace: bool = False) -> str:
    """``INSERT [OR REPLACE] INTO table (run_id, columns…) VALUES (?, …)``."""
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    return (f"{verb} INTO {table} (run_id, {', '.join(columns)}) "
            f"VALUES (?{', ?' * len(columns)})")


#: The statements writing one row of ``trade_row``, ``position_row`` and ``exit_row``.
INSERT_TRADE = insert_sql("trades", TRADE_COLUMNS)
REPLACE_POSITION = insert_sql("positions", POSITION_COLUMNS, replace=True)
INSERT_EXIT = insert_sql("exits", EXIT_COLUMNS)


def position_row(run_id: str, pos: Position) -> tuple[Any, ...]:
    """The ``positions`` row of ``pos`` (a snapshot: safe to write later)."""
    return (run_id, pos.id, pos.side, pos.size, pos.entry_price, pos.entry_time, pos.entry_fee,
            nan_to_none(pos.stop_loss), nan_to_none(pos.take_profit), pos.margin, pos.tag,
            pos.initial_size, nan_to_none(pos.trailing_stop_pct),
            nan_to_none(pos.trailing_stop), pos.best_price, json.dumps(pos.take_profits),
            pos.max_hold, pos.candles_held, pos.realised_pnl, pos.exit_fees, pos.exited_size,
            pos.exit_value, pos.entry_fee_settled, pos.funding,
            nan_to_none(pos.liquidation_price))


def position_from_row(r: Any) -> Position:
    """A ``Position`` from a ``positions`` row (symbol left empty: the run knows it)."""
    def get(name: str, default: Any) -> Any:
        value = r[name]
        return default if value is None else value

    return Position(
        id=r["id"], symbol="", side=r["side"], direction=1 if r["side"] == "long" else -1,
        size=r["size"], entry_price=r["entry_price"], entry_time=r["entry_time"],
        entry_fee=r["entry_fee"], stop_loss=none_to_nan(r["stop_loss"]),
        take_profit=none_to_nan(r["take_profit"]), margin=r["margin"], tag=r["tag"],
        initial_size=get("initial_size", r["size"]),
        trailing_stop_pct=none_to_nan(get("trailing_stop_pct", None)),
        trailing_stop=none_to_nan(get("trailing_stop", None)),
        best_price=get("best_price", r["entry_price"]),
        take_profits=json.loads(get("take_profits", "[]")), max_hold=get("max_hold", 0),
        candles_held=get("candles_held", 0), realised_pnl=get("realised_pnl", 0.0),
        exit_fees=get("exit_fees", 0.0), exited_size=get("exited_size", 0.0),
        exit_value=get("exit_value", 0.0), entry_fee_settled=get("entry_fee_settled", 0.0),
        funding=get("funding", 0.0),
        liquidation_price=none_to_nan(get("liquidation_price", None)))


def trade_row(run_id: str, trade: Trade) -> tuple[Any, ...]:
    """The ``trades`` row of ``trade``."""
    return (run_id, trade.id, trade.side, trade.size, trade.entry_time, trade.entry_price,
            trade.exit_time, trade.exit_price, trade.pnl, trade.entry_fee, trade.exit_fee,
            trade.exit_reason, nan_to_none(trade.stop_loss), nan_to_none(trade.take_profit),
            trade.tag, int(trade.settled_on_recovery), trade.funding)


def trade_from_row(r: Any) -> Trade:
    """A ``Trade`` from a ``trades`` row (symbol left empty)."""
    return Trade(id=r["id"], symbol="", side=r["side"], size=r["size"],
                 entry_time=r["entry_time"], entry_price=r["entry_price"],
                 exit_time=r["exit_time"], exit_price=r["exit_price"], pnl=r["pnl"],
                 entry_fee=r["entry_fee"], exit_fee=r["exit_fee"],
                 exit_reason=r["exit_reason"], stop_loss=none_to_nan(r["stop_loss"]),
                 take_profit=none_to_nan(r["take_profit"]), tag=r["tag"],
                 settled_on_recovery=bool(r["settled_on_recovery"]),
                 funding=r["funding"])


def exit_row(run_id: str, exit_: Exit, settled_on_recovery: bool) -> tuple[Any, ...]:
    """The ``exits`` row of one fill that reduced a position."""
    return (run_id, exit_.position_id, exit_.time, exit_.price, exit_.size, exit_.reason,
            exit_.pnl, exit_.fee, int(settled_on_recovery))


def exit_from_row(r: Any) -> Exit:
    """An ``Exit`` from an ``exits`` row."""
    return Exit(r["position_id"], r["time"], r["price"], r["size"], r["reason"], r["pnl"],
                r["fee"])
