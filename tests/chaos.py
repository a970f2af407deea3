"""The chaos scenario: one forward run of ``paperbot forward`` (a real process) through the
exchange stand-in, hit in one replay by a malformed frame and a deeply nested one, a write lock
held on its database by another process, a SIGTERM, a restart while the exchange is down, and
the exchange coming back. Used by tests/test_chaos.py (short lock) and bench/chaos.py (12 s).

``run_chaos`` returns what happened; ``check`` asserts the outcome: the run's closed trades
equal a backtest's over the same candles, every candle was processed exactly once, each
SIGTERM exited with status 0 within ``HARD_EXIT_AFTER`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.runtime import HARD_EXIT_AFTER
from tests.forward_helpers import MINUTES, backtest_trades, comparable, until
from tests.helpers import die_with_test
from tests.standins.exchange import CandleSeries, ExchangeStandin
from tests.test_recovery import env_for, last_processed

PAPERBOT = str(Path(sys.executable).with_name("paperbot"))
PARAMS = {"fast": "5", "slow": "20", "stop_loss_pct": "0.3", "take_profit_pct": "0.4"}
CURSOR = 200


@dataclass
class ChaosResult:
    """What a chaos replay produced (times in seconds)."""

    db: Path
    series: CandleSeries
    end: int  # series index after the last candle emitted
    sigterm_exits: list[tuple[int, float]] = field(default_factory=list)  # (status, seconds)
    events: list[dict] = field(default_factory=list)  # every --json-events line of every life
    phases: list[tuple[str, float]] = field(default_factory=list)
    logs: str = ""  # stderr of every life


async def _spawn(ex: ExchangeStandin, folder: Path, *extra: str) -> asyncio.subprocess.Process:
    cwd = folder / "proc"
    cwd.mkdir(exist_ok=True)
    env = {**env_for(ex, folder), "PAPERBOT_RESUME_RETRY_S": "0.5",
           "PAPERBOT_LOG_LEVEL": "WARNING"}
    return await asyncio.create_subprocess_exec(
        PAPERBOT, "forward", "--json-events", *extra, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=die_with_test)


async def _sigterm(proc: asyncio.subprocess.Process, result: ChaosResult) -> None:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), timeout=HARD_EXIT_AFTER + 7)
    result.sigterm_exits.append((code, time.monotonic() - started))
    out = (await proc.stdout.read()).decode()
    result.events += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    result.logs += (await proc.stderr.read()).decode()


async def _pump(ex: ExchangeStandin, stop: asyncio.Event, pause: float) -> None:
    """Candles keep closing at a steady pace, whatever the service is doing."""
    while not stop.is_set():
        await ex.emit_candle("BTC/USDT", "1m", ticks=0)
        await asyncio.sleep(pause)


async def run_chaos(folder: Path, lock_s: float, down_s: float = 2.0,
                    pause: float = 0.03) -> ChaosResult:
    """Replay the scenario in ``folder``; returns the result (see ``check``)."""
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=3_000, cursor=CURSOR)
    db = folder / "runs.db"
    result = ChaosResult(db, series, CURSOR)
    t0 = time.monotonic()

    def phase(name: str) -> None:
        result.phases.append((name, round(time.monotonic() - t0, 1)))

    async with ExchangeStandin([series]) as ex:
        proc = await _spawn(ex, folder, "--strategy", "sma_cross", "--symbol", "BTC/USDT",
                            "--timeframe", "1m",
                            *[f"--param={k}={v}" for k, v in PARAMS.items()])
        await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT", timeout=60)
        stop = asyncio.Event()
        pumping = asyncio.create_task(_pump(ex, stop, pause))
        try:
            await until(lambda: last_processed(db) >= int(series.ts[CURSOR + 60]), timeout=60)
            phase("malformed frames")
            await ex.send_raw('{"topic":"kline.1.BTCUSDT","data":[{"start":"x","open":"1",'
                              '"high":"1","low":"1","close":"1","volume":"1","confirm":true,'
                              '"timestamp":"abc"}],"ts":1}', venue="bybit")
            await ex.send_raw("[" * 100_000 + "]" * 100_000, venue="bybit")
            await until(lambda: last_processed(db) >= int(series.ts[CURSOR + 120]), timeout=60)
            phase(f"write lock held {lock_s:g} s")
            locker = sqlite3.connect(db, isolation_level=None, timeout=0)
            locker.execute("BEGIN IMMEDIATE")
            await asyncio.sleep(lock_s)
            locker.execute("ROLLBACK")
            locker.close()
            phase("lock released")
            await until(lambda: last_processed(db) >= int(series.ts[ex.cursor(
                "BTC/USDT", "1m") - 1]), timeout=60)
            phase("SIGTERM")
            await _sigterm(proc, result)
            ex.fail_next_rest(1_000_000, status=503)  # the exchange goes down …
            await asyncio.sleep(0.5)
            phase("restart while the exchange is down")
            proc = await _spawn(ex, folder)  # … and the service restarts meanwhile
            await asyncio.sleep(down_s)
            ex.rest.failures.clear()
            phase("exchange back")
            await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT", timeout=60)
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            await pumping
        result.end = ex.cursor("BTC/USDT", "1m")
        await until(lambda: last_processed(db) == int(series.ts[result.end - 1]), timeout=60,
                    what="every candle processed")
        phase("final SIGTERM")
        await _sigterm(proc, result)
    return result


def check(result: ChaosResult) -> dict[str, int]:
    """Assert the outcome of ``run_chaos``; returns counts for a report.

    Raises:
        AssertionError: trades differ from the backtest's, a candle was skipped or repeated,
            a SIGTERM was slow or failed, or an expected event is missing.
    """
    s, db = result.series, result.db
    with sqlite3.connect(db) as conn:
        closes = [r[0] for r in conn.execute(
            "SELECT ts FROM equity WHERE kind='candle' ORDER BY ts")]
        history_start = conn.execute("SELECT history_start FROM runs").fetchone()[0]
        opened_events = conn.execute(
            "SELECT COUNT(*) FROM events WHERE type='trade_opened'").fetchone()[0]
        fills = dict(conn.execute("SELECT action, COUNT(*) FROM audit "
                                  "WHERE action LIKE 'fill_%' GROUP BY action").fetchall())
        trades = conn.execute("SELECT id, side, size, entry_time, entry_price, exit_time, "
                              "exit_price, pnl, entry_fee, exit_fee, exit_reason, stop_loss, "
                              "take_profit, tag, funding FROM trades "
                              "ORDER BY exit_time, id").fetchall()
        still_open = conn.execute("SELECT COUNT(*) FROM positions").fetchone()[0]
    assert closes == [int(t) + 60_000 for t in s.ts[CURSOR:result.end]], \
        "a candle was skipped or repeated"
    closed, open_at_end = backtest_trades(s, history_start, result.end, "sma_cross", PARAMS,
                                          CURSOR)
    expected = [tuple(None if k in ("stop_loss", "take_profit") and v != v else v
                      for k, v in comparable(t).items()) for t in closed]
    assert [tuple(t) for t in trades] == expected, "trades differ from the backtest's"
    assert still_open == len(open_at_end), (still_open, len(open_at_end))
    assert opened_events == fills.get("fill_open", 0) == len(trades) + still_open, \
        (opened_events, fills, len(trades), still_open)
    assert fills.get("fill_close", 0) == len(trades), (fills, len(trades))
    for code, took in result.sigterm_exits:
        assert code == 0 and took <= HARD_EXIT_AFTER, (code, took)
    types = [e["type"] for e in result.events]
    assert "feed_lost" in types and "feed_restored" in types, ("no feed loss", result.phases)
    assert "storage unavailable" in result.logs, \
        ("the lock made no write fail", result.phases, result.logs[-2000:])
    assert "skipping frame" in result.logs, ("no odd frame arrived", result.logs[-2000:])
    closed_ids = [e["id"] for e in result.events if e["type"] == "trade_closed"]
    assert len(closed_ids) == len(set(closed_ids)) == len(trades), "an alert was repeated"
    return {"candles": len(closes), "trades": len(trades), "open": still_open}
