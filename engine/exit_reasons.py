"""The exit-reason breakdown of a backtest or a run: how positions ended and what each kind of
exit made.

Counting (docs/backtesting.md): a *trade* is a position, however many parts it left in; its
reason is the final part's. An *exit* is every fill that reduced a position. So a position
scaled out twice at take-profit levels and stopped at break-even is one trade (reason
``stop_loss``) and three exits (two ``take_profit``, one ``stop_loss``).
"""

from __future__ import annotations

from engine.types import EXIT_REASONS, Exit, Trade


def _row() -> dict[str, float]:
    return {"trades": 0, "wins": 0, "losses": 0, "exits": 0, "pnl": 0.0}


def exit_breakdown(trades: list[Trade], exits: list[Exit]) -> dict[str, dict[str, float]]:
    """Per exit reason (in ``EXIT_REASONS`` order, reasons that never occurred left out):
    ``trades`` (positions whose final part had that reason) with their ``wins`` and
    ``losses`` (net PnL > 0 / ≤ 0), ``exits`` (fills with that reason) and ``pnl`` (net PnL of
    those fills, quote currency). Without ``exits`` (data from before partial exits), each
    trade counts as one fill with its whole PnL."""
    out: dict[str, dict[str, float]] = {}
    for trade in trades:
        row = out.setdefault(trade.exit_reason, _row())
        row["trades"] += 1
        row["wins" if trade.pnl > 0 else "losses"] += 1
    fills = exits or [Exit(t.id, t.exit_time, t.exit_price, t.size, t.exit_reason, t.pnl,
                           t.exit_fee) for t in trades]
    for exit_ in fills:
        row = out.setdefault(exit_.reason, _row())
        row["exits"] += 1
        row["pnl"] += exit_.pnl
    order = {reason: k for k, reason in enumerate(EXIT_REASONS)}
    return dict(sorted(out.items(), key=lambda item: order.get(item[0], len(order))))


def breakdown_line(breakdown: dict[str, dict[str, float]]) -> str:
    """``"stop_loss 12 · take_profit 7 (15 exits) · time_exit 2"``: trades per final reason,
    with the exit count when parts make it differ."""
    parts = []
    for reason, row in breakdown.items():
        text = f"{reason} {int(row['trades'])}"
        if row["exits"] != row["trades"]:
            text += f" ({int(row['exits'])} exits)"
        parts.append(text)
    return " · ".join(parts)
