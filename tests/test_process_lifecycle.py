"""The service as real processes: bounded SIGTERM under exchange and Discord trouble, one
instance per database, a worker that never outlives the service, trading while Discord is down."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

from engine.forward.engine import RunSpec
from engine.runtime import HARD_EXIT_AFTER, Runtime
from tests.forward_helpers import MINUTES, settings_for, until
from tests.helpers import die_with_test
from tests.standins.exchange import CandleSeries, ExchangeStandin
from tests.test_recovery import env_for, last_processed

PAPERBOT = str(Path(sys.executable).with_name("paperbot"))
PARAMS = {"fast": "5", "slow": "20"}
CURSOR = 200


async def stored_run(ex: ExchangeStandin, tmp_path: Path) -> str:
    """A running run in ``tmp_path/runs.db``, left by an earlier life of the service."""
    settings = settings_for(tmp_path, ex, "bybit")
    async with Runtime(settings) as runtime:
        record = await runtime.service.start_run(RunSpec("sma_cross", "BTC/USDT",
                                                         timeframe="1m", params=PARAMS))
    return record.id


async def spawn(ex: ExchangeStandin, tmp_path: Path, *args: str,
                **env: str) -> asyncio.subprocess.Process:
    # not in tmp_path: its strategies/ folder would shadow the bundled package for python -m
    cwd = tmp_path / "proc"
    cwd.mkdir(exist_ok=True)
    strategies = {"PAPERBOT_STRATEGY_DIR": str(tmp_path / "strategies")} \
        if (tmp_path / "strategies").is_dir() else {}
    return await asyncio.create_subprocess_exec(
        *args, cwd=cwd, env={**env_for(ex, tmp_path), **strategies, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=die_with_test)


async def sigterm_and_time(proc: asyncio.subprocess.Process) -> tuple[int, float]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), timeout=HARD_EXIT_AFTER + 7)
    return code, time.monotonic() - started


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_sigterm_mid_backfill_while_the_exchange_fails_exits_within_8_s(tmp_path):
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=600, cursor=CURSOR)
    async with ExchangeStandin([series]) as ex:
        await stored_run(ex, tmp_path)
        proc = await spawn(ex, tmp_path, PAPERBOT, "forward")
        await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT", timeout=30)
        await ex.replay("BTC/USDT", "1m", 3)
        db = tmp_path / "runs.db"
        await until(lambda: last_processed(db) == int(series.ts[CURSOR + 2]), timeout=30)
        ex.fail_next_rest(100_000, status=503)  # REST down: the backfill retries for ~30 s
        ex.seek("BTC/USDT", "1m", CURSOR + 20)  # a gap: the next candle needs a backfill
        await ex.emit_candle("BTC/USDT", "1m")
        await asyncio.sleep(2.0)  # well inside call_with_retry's backoff
        code, took = await sigterm_and_time(proc)
        stderr = (await proc.stderr.read()).decode()
    assert code == 0, stderr
    assert took <= HARD_EXIT_AFTER, f"took {took:.1f} s"
    assert last_processed(db) == int(series.ts[CURSOR + 2])  # nothing half-done


async def test_a_second_instance_on_the_same_database_is_refused(tmp_path):
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=400, cursor=CURSOR)
    async with ExchangeStandin([series]) as ex:
        run_id = await stored_run(ex, tmp_path)
        first = await spawn(ex, tmp_path, PAPERBOT, "forward")
        await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT", timeout=30)
        second = await spawn(ex, tmp_path, PAPERBOT, "forward")
        second_code = await asyncio.wait_for(second.wait(), timeout=30)
        second_err = (await second.stderr.read()).decode()
        bot = await spawn(ex, tmp_path, sys.executable, "-m", "bot", DISCORD_TOKEN="x")
        bot_code = await asyncio.wait_for(bot.wait(), timeout=30)
        bot_err = (await bot.stderr.read()).decode()
        await ex.replay("BTC/USDT", "1m", 5)  # the first one trades on, undisturbed
        db = tmp_path / "runs.db"
        await until(lambda: last_processed(db) == int(series.ts[CURSOR + 4]), timeout=30)
        code, _ = await sigterm_and_time(first)
    host = socket.gethostname()
    for rc, err in ((second_code, second_err), (bot_code, bot_err)):
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1, err
        assert lines[0].startswith(f"error: database {db} is in use by another paperbot "
                                   f"(paperbot forward, pid {first.pid} on host {host}, ")
    assert code == 0 and run_id


async def test_the_bot_trades_while_discord_is_unreachable_and_stops_within_8_s(tmp_path):
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=400, cursor=CURSOR)
    async with ExchangeStandin([series]) as ex:
        await stored_run(ex, tmp_path)
        # Discord cannot be reached from here (no internet): login fails over and over
        bot = await spawn(ex, tmp_path, sys.executable, "-m", "bot", DISCORD_TOKEN="x.y.z",
                          PAPERBOT_LOG_LEVEL="INFO")
        await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT", timeout=60)
        await ex.replay("BTC/USDT", "1m", 10)
        db = tmp_path / "runs.db"
        await until(lambda: last_processed(db) == int(series.ts[CURSOR + 9]), timeout=30,
                    what="candles processed while Discord is down")
        workers = children(bot.pid)
        ex.fail_next_rest(100_000, status=503)  # and the exchange is in trouble too
        ex.stall(30)
        await asyncio.sleep(1.0)
        code, took = await sigterm_and_time(bot)
        stderr = (await bot.stderr.read()).decode()
        await until(lambda: not any(alive(w) for w in workers), timeout=5,
                    what="the job worker gone")
    assert code == 0, stderr[-2000:]
    assert took <= HARD_EXIT_AFTER, f"took {took:.1f} s"
    assert "the engine keeps trading" in stderr  # the keeper said why it reconnects
    assert "Traceback" not in stderr


async def test_the_job_worker_dies_with_a_sigkilled_service(tmp_path):
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=300, cursor=CURSOR)
    async with ExchangeStandin([series]) as ex:
        bot = await spawn(ex, tmp_path, sys.executable, "-m", "bot", DISCORD_TOKEN="x.y.z")
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and not workers:
            # the spawn worker is a python process running multiprocessing's entry point
            workers = [p for p in children(bot.pid)
                       if "multiprocessing" in Path(f"/proc/{p}/cmdline").read_text()]
            await asyncio.sleep(0.2)
        assert workers, "no job worker started"
        os.kill(bot.pid, signal.SIGKILL)
        await bot.wait()
        await until(lambda: not any(alive(w) for w in workers), timeout=5,
                    what="the orphaned worker gone")
