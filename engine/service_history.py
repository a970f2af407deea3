"""Backtest history of the service (``/backtest history``, ``paperbot backtests``): every
finished backtest is stored with its request and results, and can be shown again.

Mixed into ``engine.service.PaperService``; the rows live in the run database
(``engine.store.backtests``). Times ms UTC; money in quote currency.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from engine.backtest_request import BacktestReport, BacktestRequest
from engine.errors import MissingCandles, ServiceError
from engine.store.backtests import (
    StoredBacktest,
    count_backtests,
    get_backtest,
    list_backtests,
    save_backtest,
)

log = logging.getLogger(__name__)

#: Chart files of a stored backtest, in the order they are posted.
CHART_FILES = ("price", "equity", "monthly")


def request_record(request: BacktestRequest) -> dict[str, Any]:
    """The request as stored: what the trader gave (None = the default then)."""
    out = asdict(request)
    for key in ("out_dir", "charts", "fetch_missing"):
        out.pop(key, None)
    return out


def request_from_record(record: dict[str, Any]) -> BacktestRequest:
    """A ``BacktestRequest`` from ``request_record``'s output (unknown keys ignored)."""
    fields = BacktestRequest.__dataclass_fields__
    return BacktestRequest(**{k: v for k, v in record.items() if k in fields})


class HistoryService:
    """Mixin of ``PaperService``: needs ``store`` and ``backtest``."""

    store: Any

    async def record_backtest(self, request: BacktestRequest, report: BacktestReport,
                              actor: str, data: dict[str, Any] | None = None) -> int | None:
        """Store a finished backtest; returns its id (None without a run database, or when
        the write fails: history never costs the trader the result). ``data`` is
        ``report.to_json()`` when the caller has it already."""
        if self.store is None:
            return None
        out = report.json_path.parent if report.json_path is not None else None
        try:
            return await save_backtest(self.store, actor, request_record(request),
                                       data or report.to_json(), str(out) if out else None)
        except Exception as exc:
            log.warning("backtest not stored in the history: %s", exc)
            return None

    async def backtest_history(self, limit: int = 10) -> tuple[list[StoredBacktest], int]:
        """The newest ``limit`` stored backtests and how many are stored in all.

        Raises:
            ServiceError: without a run database.
        """
        store = self._need_store()  # type: ignore[attr-defined]
        return await list_backtests(store, limit), await count_backtests(store)

    async def stored_backtest(self, backtest_id: int) -> StoredBacktest:
        """The stored backtest ``backtest_id``.

        Raises:
            ServiceError: an unknown id (naming the newest ones).
        """
        store = self._need_store()  # type: ignore[attr-defined]
        found = await get_backtest(store, backtest_id)
        if found is None:
            newest = [f"#{b.id}" for b in await list_backtests(store, 5)]
            raise ServiceError(f"no stored backtest #{backtest_id}; the newest are "
                               f"{', '.join(newest) or 'none yet'} (/backtest history)")
        return found

    async def backtest_files(self, stored: StoredBacktest,
                             progress: Callable[[str], None] | None = None
                             ) -> tuple[dict[str, Path], Path | None, bool]:
        """The chart files and trades CSV of a stored backtest: the ones on disk, or — when
        they are gone (a redeploy, a cleaned folder) — those of the stored request run again.

        Returns ``(charts, trades_csv, rerun)``.

        Raises:
            ServiceError: when running it again fails (e.g. its candles are gone).
        """
        charts = {k: Path(v) for k, v in (stored.result.get("charts") or {}).items()
                  if k in CHART_FILES and Path(v).is_file()}
        csv = stored.result.get("trades_csv")
        csv_path = Path(csv) if csv and Path(csv).is_file() else None
        if "price" in charts and "equity" in charts:
            return charts, csv_path, False
        request = replace(request_from_record(stored.request), fetch_missing=False)
        report = await self.backtest(request, progress=progress)  # type: ignore[attr-defined]
        return dict(report.charts), report.trades_csv, True

    async def fetch_missing(self, missing: MissingCandles,
                            progress: Callable[[str], None] | None = None) -> int:
        """Fetch the candles a backtest found missing (its span, warm-up included) into the
        cache, in the job pool; returns how many were fetched.

        Raises:
            ServiceError: fetching is off (``PAPERBOT_OFFLINE``) or the exchange failed.
        """
        if self.settings.offline:  # type: ignore[attr-defined]
            raise ServiceError("fetching candles is switched off on this server "
                               "(PAPERBOT_OFFLINE)")
        return await self.jobs.run(  # type: ignore[attr-defined]
            "engine.fetch_job:fetch_candles_job", self.settings,  # type: ignore[attr-defined]
            missing.exchange, missing.symbol, missing.timeframe, missing.start, missing.end,
            progress=progress)
