"""Crash recovery and graceful shutdown of `paperbot forward` as a real subprocess."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

from engine.forward.engine import RunSpec
from tests.forward_helpers import MINUTES, forward_env, until
from tests.helpers import die_with_test
from tests.standins.exchange import CandleSeries, ExchangeStandin

PARAMS = {"fast": "5", "slow": "20", "stop_loss_pct": "0.3", "take_profit_pct": "0.4",
          "trailing_stop_pct": "0.2"}
PAPERBOT = str(Path(sys.executable).with_name("paperbot"))
CURSOR, TOTAL = 200, 520


def env_for(ex: ExchangeStandin, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOT_")}
    env.update(PAPERBOT_DB_PATH=str(tmp_path / "runs.db"), PAPERBOT_LIVE_EXCHANGE="bybit",
               PAPERBOT_EXCHANGE_REST_URL=ex.rest_url,
               PAPERBOT_EXCHANGE_WS_URL=ex.ws_url("bybit"), PAPERBOT_FEED_TIMEOUT_S="5",
               PAPERBOT_FEE_BPS="10", PAPERBOT_SLIPPAGE_BPS="0",
               PAPERBOT_DATA_DIR=str(tmp_path / "cache"), PAPERBOT_LOG_LEVEL="WARNING")
    return env


async def spawn(ex, tmp_path, *extra: str) -> asyncio.subprocess.Process:
    args = [PAPERBOT, "forward", "--json-events", *extra]
    return await asyncio.create_subprocess_exec(
        *args, cwd=tmp_path, env=env_for(ex, tmp_path), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, preexec_fn=die_with_test)


def query(db: Path, sql: str, args=()) -> list[tuple]:
    with sqlite3.connect(db, timeout=5) as conn:
        return conn.execute(sql, args).fetchall()


def last_processed(db: Path) -> int:
    if not db.exists():
        return -1
    try:
        rows = query(db, "SELECT last_candle_ts FROM runs")
    except sqlite3.OperationalError:
        return -1
    return rows[0][0] if rows and rows[0][0] is not None else -1


async def pump(ex: ExchangeStandin, count: int, pause: float) -> None:
    """Emit candles at a steady pace, whether a client is connected or not.

    Without ticks: exits then depend on closed candles only, which a restarted run sees
    exactly as the uninterrupted one (ticks can settle an exit a closed candle leaves
    ambiguous, and ticks sent while the service is down are gone).
    """
    for _ in range(count):
        await ex.emit_candle("BTC/USDT", "1m", ticks=0)
        await asyncio.sleep(pause)


async def reference_trades(tmp_path: Path) -> list[dict]:
    """The closed trades of an uninterrupted forward run over the same candles."""
    async with forward_env(tmp_path / "reference", count=TOTAL + 10, cursor=CURSOR) as env:
        record = await env.runtime.service.start_run(RunSpec("sma_cross", "BTC/USDT",
                                                             timeframe="1m", params=PARAMS))
        await env.ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
        await env.ex.replay("BTC/USDT", "1m", TOTAL - CURSOR, ticks=0)
        live = env.runtime.engine.runs[record.id]
        await until(lambda: live.last_candle_ts == int(env.series.ts[TOTAL - 1]), timeout=30)
        trades = await env.runtime.service.trades(record.id)
    return [{k: v for k, v in dataclasses.asdict(t).items() if k != "symbol"} for t in trades]


def moved_trailing(db: Path) -> list[tuple[int, float]]:
    """(position id, trailing level) of open positions whose trailing stop moved above its
    first level (the best price rose after the entry)."""
    try:
        return query(db, "SELECT id, trailing_stop FROM positions WHERE trailing_stop IS NOT "
                         "NULL AND best_price > entry_price")
    except sqlite3.OperationalError:
        return []


def stored_trades(db: Path) -> list[dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM trades ORDER BY exit_time, id").fetchall()
    out = []
    for r in rows:
        row = dict(r)
        row.pop("run_id")
        for key in ("stop_loss", "take_profit"):
            row[key] = float("nan") if row[key] is None else row[key]
        row["settled_on_recovery"] = bool(row["settled_on_recovery"])
        out.append(row)
    return out


async def test_sigkill_twice_loses_and_doubles_nothing(tmp_path):
    (tmp_path / "reference").mkdir()
    expected = await reference_trades(tmp_path)
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=TOTAL + 10,
                                       cursor=CURSOR)
    db = tmp_path / "runs.db"
    async with ExchangeStandin([series]) as ex:
        proc = await spawn(ex, tmp_path, "--strategy", "sma_cross", "--symbol", "BTC/USDT",
                           "--timeframe", "1m", *[f"--param={k}={v}" for k, v in
                                                  PARAMS.items()])
        await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT", timeout=30)
        pumping = asyncio.create_task(pump(ex, TOTAL - CURSOR, 0.03))
        kills = 0
        trailing_at_kill = None
        for threshold in (CURSOR + 80, CURSOR + 150):
            await until(lambda t=threshold: last_processed(db) >= int(series.ts[t]),
                        timeout=60, what=f"candle {threshold} processed")
            if kills:  # the second kill hits a position whose trailing stop has moved
                await until(lambda: bool(moved_trailing(db)), timeout=60,
                            what="an open position with a moved trailing stop")
            proc.kill()  # SIGKILL: no chance to clean up
            await proc.wait()
            kills += 1
            if kills == 2:
                trailing_at_kill = moved_trailing(db)
            await asyncio.sleep(0.3)  # candles keep closing while the service is down
            proc = await spawn(ex, tmp_path)  # no --strategy: resume what is stored
        await asyncio.wait_for(pumping, timeout=60)
        await until(lambda: last_processed(db) == int(series.ts[TOTAL - 1]), timeout=60,
                    what="all candles processed after the restarts")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=15)
        stdout = (await proc.stdout.read()).decode()
    assert kills == 2 and code == 0
    assert trailing_at_kill, "no trailing position open at the second kill"
    position_id, level = trailing_at_kill[0]
    killed = next(t for t in stored_trades(db) if t["id"] == position_id)
    # after the restart the position carried on with the stored level: it left at or above it
    assert killed["exit_reason"] in ("trailing_stop", "stop_loss", "take_profit", "signal")
    assert killed["exit_reason"] != "trailing_stop" or killed["exit_price"] >= level - 1e-9
    trades = stored_trades(db)
    assert len(trades) >= 8
    assert len({t["id"] for t in trades}) == len(trades)  # none doubled
    strip = [{k: v for k, v in t.items() if k != "settled_on_recovery"} for t in trades]
    ref = [{k: v for k, v in t.items() if k != "settled_on_recovery"} for t in expected]
    assert json.dumps(strip, sort_keys=True) == json.dumps(ref, sort_keys=True)
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    closes = [r[0] for r in query(db, "SELECT ts FROM equity WHERE kind='candle' ORDER BY ts")]
    assert closes == [int(t) + 60_000 for t in series.ts[CURSOR:TOTAL]]  # no gap, no repeat
    assert '"type": "run_started"' in stdout


async def test_sigterm_exits_zero_and_the_run_resumes(tmp_path):
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=400, cursor=CURSOR)
    db = tmp_path / "runs.db"
    async with ExchangeStandin([series]) as ex:
        proc = await spawn(ex, tmp_path, "--strategy", "sma_cross", "--symbol", "BTC/USDT",
                           "--timeframe", "1m", "--param", "fast=5", "--param", "slow=20")
        await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT", timeout=30)
        await ex.replay("BTC/USDT", "1m", 20)
        await until(lambda: last_processed(db) == int(series.ts[CURSOR + 19]), timeout=30)
        started = asyncio.get_running_loop().time()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=10)
        took = asyncio.get_running_loop().time() - started
        first_out = (await proc.stdout.read()).decode().splitlines()
        assert code == 0 and took < 5
        assert query(db, "SELECT status FROM runs") == [("running",)]
        await ex.replay("BTC/USDT", "1m", 5)  # missed while down
        proc = await spawn(ex, tmp_path)
        await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT", timeout=30)
        await until(lambda: last_processed(db) == int(series.ts[CURSOR + 24]), timeout=30)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
        second_out = (await proc.stdout.read()).decode().splitlines()
    stopped = [json.loads(line) for line in first_out if '"run_stopped"' in line]
    assert stopped and stopped[-1]["reason"] == "shutdown"
    resumed = [json.loads(line) for line in second_out if '"run_started"' in line]
    assert resumed and resumed[0]["resumed"] is True


async def test_exit_while_down_is_settled_on_recovery_at_its_candle(tmp_path):
    from engine.events import TradeClosed
    from engine.runtime import Runtime
    from tests.forward_helpers import drain, settings_for

    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=600, cursor=CURSOR)
    async with ExchangeStandin([series]) as ex:
        settings = settings_for(tmp_path, ex, "bybit")
        async with Runtime(settings) as runtime:
            record = await runtime.service.start_run(RunSpec(
                "always_long", "BTC/USDT", timeframe="1m",
                params={"stop_pct": "0.3", "take_pct": "0.3"}))
            await ex.wait_for_subscription("bybit", "kline.1.BTCUSDT")
            live = runtime.engine.runs[record.id]
            await ex.emit_candle("BTC/USDT", "1m")
            await until(lambda: bool(live.portfolio.positions))
            position = live.portfolio.positions[0]
        # the service is down; candles keep closing until one reaches a level
        hit = None
        for _ in range(300):
            c = await ex.emit_candle("BTC/USDT", "1m")
            if c.low <= position.stop_loss or c.high >= position.take_profit:
                hit = c
                break
        assert hit is not None
        await ex.replay("BTC/USDT", "1m", 3)
        async with Runtime(settings) as runtime:
            events = runtime.bus.subscribe()
            assert await runtime.engine.resume_all() == [record.id]
            closed = [e for e in drain(events) if isinstance(e, TradeClosed)]
    first = closed[0].trade
    assert first.id == position.id
    assert first.settled_on_recovery is True
    assert first.exit_time == hit.ts  # settled at the candle where it happened
    assert first.exit_reason in ("stop_loss", "take_profit")
