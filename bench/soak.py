"""Memory of a long-lived forward engine: RSS of ``paperbot forward`` over a day of 1m candles.

Usage: python bench/soak.py [--candles 1440] [--runs 20] [--ticks 1] [--lag 2] [--fresh]
                            [--breakdown | --trace [FRAMES]]

1. The exchange stand-in runs in this process (Bybit v5 protocol on 127.0.0.1) with real
   BTC/USDT and ETH/USDT 1m candles from ``../shared/data``: 12,000 closed candles of history
   (every run's window fits) and ``--candles`` more to replay.
2. ``--runs`` runs at 1m are created in a fresh run database by a short-lived in-process
   ``Runtime``: the four bundled strategies in turn (sma_cross, rsi_reversion,
   donchian_breakout, mtf_trend) on BTC/USDT then ETH/USDT, default parameters except
   mtf_trend's ``trend_period=10`` (a 4h EMA(10): a warm-up of 5,280 1m candles, a window of
   10,560, instead of 24,480 and 48,960 with the default 50). The runtime is shut down; the
   runs stay ``running``. Unless ``--fresh``, each run's stored window start
   (``history_start``) is moved back to hold its full ``history_candles()`` window, as after
   days of trading, so the soak measures the steady state rather than windows filling up.
3. ``paperbot forward --db …`` starts as a separate process (the PAPERBOT_* environment points
   at the stand-in) and resumes them all. The candles are replayed, each with ``--ticks``
   unclosed updates first, fast but paced: candle k is sent once every run has stored candle
   k − ``--lag`` as processed (``last_candle_ts`` in the database).
4. The engine's VmRSS (``/proc/<pid>/status``) is read once every run has processed the first
   10 replayed candles (start), at the middle, at the end and at every twelfth in between;
   printed with the growth per run-candle and PASS/FAIL against the targets: end ≤ start + 5 MB
   and end ≤ 160 MB. The exit status is 1 on FAIL.

``--breakdown`` runs the same engine through ``bench/soak_engine.py`` and splits its memory at
every reading: glibc heap in use and held free, mmapped blocks, SQLite's own allocations, live
objects per type. ``--trace`` runs it under tracemalloc instead (slower and heavier, so the RSS
targets are not judged) and prints the allocation sites that grew most between the start and
end readings, ``file:line``. Both print the report of ``bench/soak_report.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED_DATA, proc_status
from bench.soak_report import breakdown_report, trace_report

#: The run mix: every bundled strategy, 1m, with the parameters given (strings, as typed).
STRATEGIES = (("sma_cross", {}), ("rsi_reversion", {}), ("donchian_breakout", {}),
              ("mtf_trend", {"trend_period": "10"}))
SYMBOLS = ("BTC/USDT", "ETH/USDT")
HISTORY = 12_000  # closed 1m candles before the replay: every run's window fits
SETTLE = 10  # replayed candles every run has processed before the start reading
TARGET_GROWTH_MB, TARGET_RSS_MB = 5.0, 160.0
PAPERBOT = str(Path(sys.executable).with_name("paperbot"))
DRIVER = str(Path(__file__).with_name("soak_engine.py"))
WAIT_S = 120.0  # longest wait for the engine (resume of every run, one paced candle)


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of process ``pid``, MiB (VmRSS, VmHWM)."""
    field = proc_status(pid)
    return field["VmRSS"] / 1024, field["VmHWM"] / 1024


def die_with_parent() -> None:
    """In the engine child before ``exec``: SIGKILL it if the benchmark dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PDEATHSIG


def series(symbol: str, candles: int):
    """``HISTORY`` closed 1m candles of ``symbol`` and ``candles`` more to replay."""
    from tests.standins.exchange import CandleSeries

    path = SHARED_DATA / f"binance_{symbol.replace('/', '-')}_1m.parquet"
    return CandleSeries.from_parquet(path, symbol, "1m", count=HISTORY + candles,
                                     cursor=HISTORY)


def environment(folder: Path, rest: str, ws: str) -> dict[str, str]:
    """PAPERBOT_* settings pointing the live exchange at the stand-in (others removed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOT_")}
    env.update(PAPERBOT_DB_PATH=str(folder / "runs.db"), PAPERBOT_LIVE_EXCHANGE="bybit",
               PAPERBOT_EXCHANGE_REST_URL=rest, PAPERBOT_EXCHANGE_WS_URL=ws,
               PAPERBOT_DATA_DIR=str(folder / "cache"), PAPERBOT_LOG_LEVEL="WARNING")
    return env


async def create_runs(folder: Path, rest: str, ws: str, runs: int) -> list[str]:
    """Start ``runs`` runs with a short-lived in-process runtime; returns their ids."""
    from engine.forward.engine import RunSpec
    from engine.runtime import Runtime
    from engine.settings import load_settings

    settings = load_settings(db_path=folder / "runs.db", data_dir=folder / "cache",
                             live_exchange="bybit", exchange_rest_url=rest,
                             exchange_ws_url=ws, log_level="WARNING")
    ids = []
    async with Runtime(settings) as runtime:
        assert runtime.service is not None
        for k in range(runs):
            name, params = STRATEGIES[k % len(STRATEGIES)]
            symbol = SYMBOLS[(k // len(STRATEGIES)) % len(SYMBOLS)]
            record = await runtime.service.start_run(RunSpec(name, symbol, timeframe="1m",
                                                             params=params))
            ids.append(record.id)
    return ids


def age_runs(db: Path) -> None:
    """Move every run's ``history_start`` back to hold a full window of
    ``history_candles()`` base candles, as a run that has lived for days has: the resumed
    engine rebuilds exactly that window, so the soak measures the steady state."""
    from engine.registry import build_strategy

    with contextlib.closing(sqlite3.connect(db)) as conn, conn:  # commit, then close
        rows = conn.execute("SELECT id, strategy, params, last_candle_ts FROM runs").fetchall()
        for run_id, name, params, last in rows:
            keep = build_strategy(name, json.loads(params), "1m").history_candles()
            if keep > HISTORY:
                raise SystemExit(f"soak: {name} keeps {keep:,} candles, more than the "
                                 f"{HISTORY:,} of history served")
            conn.execute("UPDATE runs SET history_start = ? WHERE id = ?",
                         (last - (keep - 1) * 60_000, run_id))


class Engine:
    """The ``paperbot forward`` process and what it has stored (read from its database)."""

    def __init__(self, folder: Path, env: dict[str, str], trace: int = 0,
                 breakdown: bool = False) -> None:
        self.folder = folder
        self.env = env
        self.trace = trace
        self.driven = bool(trace) or breakdown  # through bench/soak_engine.py
        self.readings = folder / "readings"
        self.proc: asyncio.subprocess.Process | None = None
        self.db: sqlite3.Connection | None = None

    async def start(self) -> None:
        db = str(self.folder / "runs.db")
        args = [PAPERBOT, "forward", "--db", db]
        if self.driven:
            self.readings.mkdir()
            traced = ["-X", f"tracemalloc={self.trace}"] if self.trace else []
            args = [sys.executable, *traced, DRIVER, str(self.readings), *args[1:]]
        with open(self.folder / "engine.out", "wb") as out, \
                open(self.folder / "engine.err", "wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *args, cwd=self.folder, env=self.env, stdout=out, stderr=err,
                preexec_fn=die_with_parent)
        self.db = sqlite3.connect(db, timeout=5, isolation_level=None)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def progress(self) -> tuple[int, int]:
        """(oldest ``last_candle_ts`` over the runs, runs not ``running``)."""
        assert self.db is not None
        oldest, gone = self.db.execute(
            "SELECT MIN(last_candle_ts), SUM(status != 'running') FROM runs").fetchone()
        return int(oldest), int(gone)

    def failure(self, what: str) -> SystemExit:
        """Stop the benchmark, quoting the end of the engine's stderr."""
        tail = (self.folder / "engine.err").read_text(errors="replace").splitlines()[-15:]
        return SystemExit(f"soak: {what}\n" + "\n".join(tail))

    async def wait_processed(self, ts: int, timeout: float = WAIT_S) -> None:
        """Wait until every run has processed the candle opening at ``ts`` (ms UTC)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            oldest, gone = self.progress()
            if gone:
                raise self.failure(f"{gone} runs are no longer running")
            if oldest >= ts:
                return
            if self.proc.returncode is not None:
                raise self.failure(f"the engine exited with status {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise self.failure(f"candle {ts} not processed by every run within {timeout} s")
            await asyncio.sleep(0.002)

    async def reading(self, kind: str) -> Path:
        """Have the driven engine write a ``snapshot`` (tracemalloc) or ``stats`` file;
        returns it."""
        assert self.proc is not None
        suffix, sig = {"snapshot": ("pickle", signal.SIGUSR1), "stats": ("json",
                                                                         signal.SIGUSR2)}[kind]
        path = self.readings / f"{kind}-{len(list(self.readings.glob(kind + '-*')))}.{suffix}"
        self.proc.send_signal(sig)
        deadline = time.monotonic() + WAIT_S
        while not path.exists():
            if time.monotonic() > deadline:
                raise self.failure(f"no {kind} file from the engine")
            await asyncio.sleep(0.05)
        return path

    def kept(self) -> list[tuple[str, str, int]]:
        """(strategy, symbol, base candles in memory) per run, from the stored window start."""
        assert self.db is not None
        rows = self.db.execute("SELECT strategy, symbol, history_start, last_candle_ts "
                               "FROM runs ORDER BY rowid").fetchall()
        return [(s, sym, (last - first) // 60_000 + 1) for s, sym, first, last in rows]

    def log_summary(self) -> str:
        """How many warnings and errors the engine logged (its shutdown aside), the first
        few quoted."""
        lines = (self.folder / "engine.err").read_text(errors="replace").splitlines()
        logged = [line.split(" ", 2)[-1] for line in lines
                  if (" WARNING " in line or " ERROR " in line)
                  and "shutting down" not in line]
        if not logged:
            return "no warnings logged"
        return f"{len(logged)} warnings/errors logged, first: " + " | ".join(logged[:3])

    async def stop(self) -> tuple[float, int | None]:
        """SIGTERM, then SIGKILL after 15 s; returns (seconds to exit, exit status)."""
        if self.db is not None:
            self.db.close()
            self.db = None
        if self.proc is None or self.proc.returncode is not None:
            return 0.0, None if self.proc is None else self.proc.returncode
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout=15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            code = None
        return time.monotonic() - began, code


async def replay(engine: Engine, ex, stamps, args: argparse.Namespace
                 ) -> tuple[dict[str, float], dict[str, Path]]:
    """Emit the candles, paced; returns RSS (MB) and the engine's files per labelled reading."""
    checkpoints = {SETTLE: "start", args.candles // 2: "middle", args.candles: "end"}
    for k in range(1, 12):
        checkpoints.setdefault(k * args.candles // 12, "")
    readings: dict[str, float] = {}
    files: dict[str, Path] = {}
    began = time.monotonic()
    for n in range(1, args.candles + 1):
        for symbol in SYMBOLS:
            await ex.emit_candle(symbol, "1m", ticks=args.ticks)
        if n not in checkpoints:
            if n > args.lag:
                await engine.wait_processed(int(stamps[HISTORY + n - 1 - args.lag]))
            continue
        await engine.wait_processed(int(stamps[HISTORY + n - 1]))
        rss, peak = rss_mb(engine.pid)
        label = checkpoints[n]
        print(f"candle {n:>5,} of {args.candles:,} ({time.monotonic() - began:4.0f} s): "
              f"engine RSS {rss:6.1f} MB, peak {peak:6.1f} MB {label}", flush=True)
        if label:
            readings[label] = rss
        if args.trace and label:
            files[label] = await engine.reading("snapshot")
        elif args.breakdown:
            files[label or f"candle {n:,}"] = await engine.reading("stats")
    readings["seconds"] = time.monotonic() - began
    return readings, files


async def soak(args: argparse.Namespace) -> int:
    from tests.standins.exchange import ExchangeStandin

    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)  # clean up
    markets = [series(symbol, args.candles) for symbol in SYMBOLS]
    with tempfile.TemporaryDirectory(prefix="paperbot-soak-") as tmp:
        folder = Path(tmp)
        async with ExchangeStandin(markets) as ex:
            ws = ex.ws_url("bybit")
            await create_runs(folder, ex.rest_url, ws, args.runs)
            if not args.fresh:
                age_runs(folder / "runs.db")
            engine = Engine(folder, environment(folder, ex.rest_url, ws), args.trace,
                            args.breakdown)
            try:
                await engine.start()
                for symbol in SYMBOLS[:1 + (args.runs - 1) // len(STRATEGIES)]:
                    topic = f"kline.1.{symbol.replace('/', '')}"
                    await ex.wait_for_subscription("bybit", topic, timeout=WAIT_S)
                readings, files = await replay(engine, ex, markets[0].ts, args)
                kept = engine.kept()
            finally:
                exit_s, code = await engine.stop()
            log = engine.log_summary()
            report = (trace_report(files, args.trace) if args.trace else
                      breakdown_report(files) if args.breakdown else "")
    summarize(args, readings, kept)
    print(f"engine exit after SIGTERM: {exit_s:.1f} s, status {code}; {log}")
    if report:
        print(report)
    if args.trace:
        print("(traced: tracemalloc's own memory is in the RSS, targets not judged)")
        return 0
    growth = readings["end"] - readings["start"]
    passed = growth <= TARGET_GROWTH_MB and readings["end"] <= TARGET_RSS_MB
    print(f"{'PASS' if passed else 'FAIL'}: end ≤ start + {TARGET_GROWTH_MB:.0f} MB "
          f"({growth:+.1f} MB), end ≤ {TARGET_RSS_MB:.0f} MB ({readings['end']:.1f} MB)")
    return 0 if passed else 1


def summarize(args: argparse.Namespace, readings: dict[str, float],
              kept: list[tuple[str, str, int]]) -> None:
    """Print what ran, the windows kept and the RSS growth, overall and in the second half."""
    took = readings["seconds"]
    print(f"{args.runs} runs at 1m ({'fresh' if args.fresh else 'full windows'}), "
          f"{args.candles:,} candles per symbol ({args.candles / 60:.0f} h) with {args.ticks} "
          f"ticks each, replayed in {took:.0f} s "
          f"({args.runs * args.candles / took:,.0f} run-candles/s)")
    by_strategy: dict[str, list[int]] = {}
    for name, _, count in kept:
        by_strategy.setdefault(name, []).append(count)
    print("base candles in memory at the end: " + ", ".join(
        f"{name} {min(c):,}–{max(c):,}" for name, c in by_strategy.items()))
    start, middle, end = readings["start"], readings["middle"], readings["end"]
    whole = args.runs * (args.candles - SETTLE)
    half = args.runs * (args.candles - args.candles // 2)
    print(f"engine RSS: start {start:.1f} MB, middle {middle:.1f} MB, end {end:.1f} MB; "
          f"growth {end - start:+.1f} MB = {(end - start) * 2**20 / whole:+.0f} B per "
          f"run-candle over {whole:,}; second half {end - middle:+.1f} MB = "
          f"{(end - middle) * 2**20 / half:+.0f} B per run-candle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=1440,
                        help="1m candles replayed per symbol (default 1,440: 24 h)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--ticks", type=int, default=1,
                        help="unclosed updates sent before each closed candle")
    parser.add_argument("--lag", type=int, default=2,
                        help="candles the replay may run ahead of the slowest run")
    parser.add_argument("--fresh", action="store_true",
                        help="runs start with their warm-up only (windows fill during the "
                             "soak) instead of a full window")
    parser.add_argument("--trace", type=int, nargs="?", const=1, default=0, metavar="FRAMES",
                        help="tracemalloc the engine (FRAMES per traceback, default 1) and "
                             "print the growing allocation sites")
    parser.add_argument("--breakdown", action="store_true",
                        help="split the engine's memory (malloc heap, SQLite, object types) at "
                             "every reading (each reading runs a full garbage collection)")
    args = parser.parse_args()
    if args.candles < 4 * SETTLE or args.runs < 1 or args.lag < 0 or args.ticks < 0:
        parser.error(f"need --candles ≥ {4 * SETTLE}, --runs ≥ 1, --lag ≥ 0, --ticks ≥ 0")
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(soak(args)))


if __name__ == "__main__":
    main()
