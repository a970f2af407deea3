"""``paperbot pause|resume|panic|audit``: through a running service (the command queue) and on
the database when no service runs."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from engine.cli.main import main
from engine.forward.engine import RunSpec
from engine.runtime import Runtime
from tests.forward_helpers import MINUTES, settings_for, until
from tests.standins.exchange import CandleSeries, ExchangeStandin
from tests.test_process_lifecycle import PAPERBOT, sigterm_and_time, spawn

WIDE = {"stop_pct": "5", "take_pct": "5"}


async def cli(ex, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    proc = await spawn(ex, tmp_path, PAPERBOT, *args)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


def statuses(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT id, status FROM runs").fetchall())


async def holding_runs(ex, tmp_path: Path, count: int) -> list[str]:
    """``count`` running runs of always_long, each holding a position, left in the database."""
    settings = settings_for(tmp_path, ex, "bybit")
    async with Runtime(settings) as runtime:
        ids = [(await runtime.service.start_run(RunSpec(
            "always_long", "BTC/USDT", timeframe="1m", params=WIDE))).id for _ in range(count)]
        await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
        await ex.emit_candle("BTC/USDT", "1m")
        await until(lambda: all(r.portfolio.positions for r in runtime.engine.runs.values()),
                    timeout=10)
    return ids


async def test_pause_and_panic_through_a_running_service(tmp_path):
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=400, cursor=200)
    db = tmp_path / "runs.db"
    async with ExchangeStandin([series]) as ex:
        ids = await holding_runs(ex, tmp_path, 2)
        service = await spawn(ex, tmp_path, PAPERBOT, "forward")
        await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT", timeout=30)
        paused = await cli(ex, tmp_path, "pause", ids[0])
        panicked = await cli(ex, tmp_path, "panic", "--yes")
        after = statuses(db)
        code, _ = await sigterm_and_time(service)
    assert paused[0] == 0 and paused[1].strip() == \
        f"run {ids[0]} paused: no new entries, exits still managed"
    assert panicked[0] == 0 and panicked[1].startswith(
        "kill switch: 1 runs paused, 2 positions closed, realised ")
    assert after == {ids[0]: "paused", ids[1]: "paused"} and code == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM positions").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM trades WHERE exit_reason='manual'"
                            ).fetchone() == (2,)
        actions = conn.execute("SELECT actor, action FROM audit").fetchall()
    assert ("cli", "panic") in actions and ("cli", "run_paused") in actions


async def test_panic_without_a_service_brings_the_runs_up_to_close(tmp_path):
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=400, cursor=200)
    db = tmp_path / "runs.db"
    async with ExchangeStandin([series]) as ex:
        ids = await holding_runs(ex, tmp_path, 1)
        panicked = await cli(ex, tmp_path, "panic", "--yes")
    assert panicked[0] == 0 and panicked[1].startswith(
        "kill switch: 1 runs paused, 1 positions closed")
    assert f"  {ids[0]} #1 long BTC/USDT @ " in panicked[1]
    assert statuses(db) == {ids[0]: "paused"} and "Traceback" not in panicked[2]


def test_pause_resume_and_audit_on_the_database_without_a_service(tmp_path, capsys):
    async def prepare() -> list[str]:
        series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=400, cursor=200)
        async with ExchangeStandin([series]) as ex:
            return await holding_runs(ex, tmp_path, 1)

    [run_id] = asyncio.run(prepare())
    db = str(tmp_path / "runs.db")
    results = []
    for args in (["pause", run_id], ["preview"], ["resume", run_id], ["pause", "nope"],
                 ["audit", run_id], ["audit", "--limit", "0"]):
        if args == ["preview"]:
            args = ["panic"]
        code = main([*args, "--db", db])
        captured = capsys.readouterr()
        results.append((code, captured.out.strip(), captured.err.strip(), statuses(db)))
    pause, preview, resume, unknown, audit, bad = results
    assert pause[0] == 0 and pause[3] == {run_id: "paused"}
    assert preview[0] == 0 and preview[1] == (
        "paperbot panic would pause 0 running runs and close 1 open positions at market; "
        "run it again with --yes to do it")
    assert resume[0] == 0 and resume[1] == \
        f"run {run_id} marked running: it resumes when paperbot starts"
    assert resume[3] == {run_id: "running"}
    assert unknown[0] == 2 and unknown[2] == \
        "error: unknown run 'nope'; list them with paperbot runs"
    lines = audit[1].splitlines()
    assert audit[0] == 0 and [line.split()[4] for line in lines[:2]] == \
        ["run_running", "run_paused"]
    assert bad[0] == 2 and bad[2] == "error: --limit must be between 1 and 1000, got 0"
