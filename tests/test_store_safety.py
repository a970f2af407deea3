"""One instance per database, and every storage problem at start as one line (issue 7, 5-6).

Lock tests use real processes (``python -c``) and SIGKILL; storage tests use real databases
written through ``Store`` and then damaged the way disks and people damage them.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.events import FeedLost
from engine.store.errors import InstanceLocked, StorageError
from engine.store.lock import acquire, lock_path, read_holder
from engine.store.schema import SCHEMA_VERSION, SchemaError
from engine.store.store import RunRecord, StepWrite, Store

HOST = socket.gethostname()
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
PROC_TIMEOUT = 20  # s, any child process of these tests


def run_python(code: str, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    """``python -c code args…`` in this interpreter, bounded."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=PROC_TIMEOUT, **kwargs)


def paperbot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real CLI as a subprocess, without the caller's PAPERBOT_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOT_")}
    return subprocess.run([sys.executable, "-m", "engine.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=PROC_TIMEOUT)


def read_line(proc: subprocess.Popen, timeout: float = PROC_TIMEOUT) -> str:
    """The next line ``proc`` writes (bounded; reads the pipe's descriptor unbuffered, so two
    lines arriving together are not stuck in a buffer that ``select`` cannot see)."""
    pending = _partial.setdefault(proc.pid, b"")
    deadline = time.monotonic() + timeout
    while b"\n" not in pending:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, left))
        assert ready, f"no output from pid {proc.pid} within {timeout} s"
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, f"pid {proc.pid} closed its output"
        pending += chunk
    line, _, rest = pending.partition(b"\n")
    _partial[proc.pid] = rest
    return line.decode().strip()


_partial: dict[int, bytes] = {}


def one_line(exc: BaseException, path: Path) -> str:
    text = str(exc)
    assert "\n" not in text and str(path) in text, text
    return text


# ---- the instance lock -------------------------------------------------------------------------
HOLD = """
    import os, sys, time
    from engine.store.lock import acquire
    lock = acquire(sys.argv[1], command="paperbot forward")
    def say(text):  # one write per line: parent and child share the pipe
        os.write(1, (text + chr(10)).encode())
    if len(sys.argv) > 2 and os.fork() == 0:   # a worker that outlives its parent
        say(f"child {os.getpid()}")
        time.sleep(30)
        os._exit(0)
    say(f"locked {os.getpid()}")
    time.sleep(30)
"""

TRY = """
    import sys
    from engine.store.lock import acquire, InstanceLocked
    try:
        lock = acquire(sys.argv[1], command="paperbot forward")
    except InstanceLocked as exc:
        print(exc)
        sys.exit(3)
    print("acquired", lock.path.read_text().strip())
"""


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    db = tmp_path / "var" / "paperbot.db"
    with acquire(db, command="python -m bot") as lock:
        assert lock.held and lock.path == lock_path(db) == tmp_path / "var" / "paperbot.db.lock"
        refused = run_python(TRY, str(db))
        assert refused.returncode == 3, refused.stderr
        lines = refused.stdout.splitlines()
        assert len(lines) == 1 and refused.stderr == ""
        assert lines[0].startswith(f"database {db} is in use by another paperbot (python -m "
                                   f"bot, pid {os.getpid()} on host {HOST}, since ")
        assert lines[0].endswith(" UTC); stop it first: one instance per database")
        holder = read_holder(db)
        assert (holder.pid, holder.host, holder.command) == (os.getpid(), HOST, "python -m bot")
    assert not lock.held and lock.path.read_text() == ""  # a clean release clears the record
    taken = run_python(TRY, str(db))
    assert taken.returncode == 0 and taken.stdout.startswith("acquired {"), taken.stderr
    assert taken.stderr == ""  # nothing stale to take over
    assert lock.path.exists()  # never deleted


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path, caplog):
    db = tmp_path / "paperbot.db"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD), str(db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert read_line(holder) == f"locked {holder.pid}"
        with pytest.raises(InstanceLocked) as refused:
            acquire(db)
        assert f"(paperbot forward, pid {holder.pid} on host {HOST}, since " in \
            one_line(refused.value, db)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=PROC_TIMEOUT)
    with caplog.at_level(logging.WARNING, logger="engine.store.lock"):
        lock = acquire(db)
    try:
        took = [r.getMessage() for r in caplog.records if r.name == "engine.store.lock"]
        assert len(took) == 1
        assert took[0].startswith(f"run database {db}: the previous holder of its instance "
                                  f"lock (paperbot forward, pid {holder.pid} on host {HOST}, "
                                  f"since ")
        assert took[0].endswith(" UTC) ended without releasing it; taking the lock over")
        assert read_holder(db).pid == os.getpid()
    finally:
        lock.release()


def test_a_forked_worker_does_not_keep_the_lock_of_a_dead_parent(tmp_path):
    db = tmp_path / "paperbot.db"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD), str(db), "fork"],
                              stdout=subprocess.PIPE, text=True)
    child_pid = 0
    try:
        said = dict(read_line(parent).split() for _ in range(2))
        assert said["locked"] == str(parent.pid)
        child_pid = int(said["child"])
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=PROC_TIMEOUT)
        os.kill(child_pid, 0)  # the worker is still alive …
        acquire(db).release()  # … and the lock is free all the same
    finally:
        if parent.poll() is None:
            parent.kill()
        if child_pid:
            os.kill(child_pid, signal.SIGKILL)


def test_the_same_process_acquiring_twice_is_refused(tmp_path):
    db = tmp_path / "paperbot.db"
    first = acquire(db)
    with pytest.raises(InstanceLocked) as twice:
        acquire(db)  # e.g. two Runtimes in one process
    assert one_line(twice.value, db) == (f"database {db} is already open in this process "
                                         f"(pid {os.getpid()}); one instance per database")
    first.release()
    acquire(db).release()


def test_a_lock_that_cannot_be_created_is_one_line(tmp_path):
    (tmp_path / "var").write_text("a file where the folder should be")
    db = tmp_path / "var" / "paperbot.db"
    with pytest.raises(StorageError) as failed:
        acquire(db)
    assert one_line(failed.value, db) == (
        f"cannot create the folder {db.parent} for run database {db}: {db.parent} is a file, "
        f"not a folder; choose another --db / PAPERBOT_DB_PATH")


# ---- storage at start ----------------------------------------------------------------------------
def record(run_id: str) -> RunRecord:
    return RunRecord(
        id=run_id, strategy="sma_cross", params={"fast": 10}, symbol="BTC/USDT", timeframe="1m",
        timeframes=["1m"], exchange="bybit", market_type="spot", starting_balance=10_000.0,
        fee_bps=10.0, maker_fee_bps=10.0, slippage_bps=0.0, leverage=1.0, status="running",
        channel_id=None, started_by="test", created_at=T0, updated_at=T0, stopped_at=None,
        stop_reason=None, history_start=T0, last_candle_ts=None, balance=10_000.0,
        next_position_id=1, strategy_state={}, mark_price=None, mark_ts=None)


@pytest.fixture(scope="module")
def real_db(tmp_path_factory) -> Path:
    """A closed, checkpointed database of three runs, 600 candles each (~60 pages)."""
    import asyncio

    async def build(path: Path) -> None:
        store = await Store.open(path)
        for r in range(3):
            await store.create_run(record(f"run{r}"), actor="test")
            for i in range(600):
                ts = T0 + i * 60_000
                await store.commit_step(StepWrite(
                    run_id=f"run{r}", balance=10_000.0 + i, next_position_id=1,
                    strategy_state={"i": i}, last_candle_ts=ts, equity=(ts, 10_000.0 + i, 1e4),
                    events=(FeedLost(f"run{r}", ts, "bybit", f"silent for {i} s"),)
                    if i % 10 == 0 else ()))
        await store.close()

    path = tmp_path_factory.mktemp("real") / "runs.db"
    asyncio.run(build(path))
    assert not Path(f"{path}-wal").exists() and path.stat().st_size > 40 * 4096
    return path


def copy_of(real_db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    shutil.copyfile(real_db, path)
    return path


def corrupt_a_middle_page(path: Path) -> int:
    """Write garbage over a table b-tree page in the middle of the file; returns its number."""
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    pages = len(data) // page_size
    middle = [n for n in range(pages // 3, pages)  # 0-based; page 1 holds the header
              if data[n * page_size] in (0x05, 0x0D)]
    n = middle[0]
    data[n * page_size:(n + 1) * page_size] = random.Random(7).randbytes(page_size)
    path.write_bytes(bytes(data))
    return n + 1


async def test_a_new_database_is_created_and_said_once(tmp_path, caplog):
    db = tmp_path / "var" / "paperbot.db"
    with caplog.at_level(logging.INFO, logger="engine.store"):
        store = await Store.open(db)
        await store.close()
        again = await Store.open(db)
        await again.close()
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert said == [("WARNING", f"created a new run database at {db}")]
    assert store.created is True and again.created is False
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_read_only_commands_do_not_create_a_database(tmp_path):
    db = tmp_path / "paperbot.db"
    with pytest.raises(StorageError) as missing:
        await Store.open(db, create=False)
    assert one_line(missing.value, db) == (
        f"no run database at {db}; start a run with paperbot forward, or point "
        f"--db / PAPERBOT_DB_PATH at the database")
    assert not db.exists()


@pytest.mark.parametrize("leftover", ["-wal", "-shm", ".bak", ".backup-20261201",
                                      ".20261201.bak"])
async def test_a_missing_database_with_leftovers_is_not_recreated(tmp_path, leftover):
    db = tmp_path / "paperbot.db"
    Path(f"{db}{leftover}").write_bytes(b"\0" * 64)
    with pytest.raises(StorageError) as missing:
        await Store.open(db)
    text = one_line(missing.value, db)
    assert text.startswith(f"run database {db} is missing but {db}{leftover} is still there")
    assert text.endswith("remove that file to start a new database")
    assert not db.exists()


async def test_a_directory_is_refused(tmp_path):
    with pytest.raises(StorageError) as refused:
        await Store.open(tmp_path)
    assert one_line(refused.value, tmp_path).startswith(f"run database {tmp_path} is a "
                                                        f"directory; give a file path")


async def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    db = tmp_path / "paperbot.db"
    db.write_text("# paperbot settings\nPAPERBOT_BALANCE=10000\n" * 40)
    with pytest.raises(StorageError) as refused:
        await Store.open(db)
    assert one_line(refused.value, db).startswith(
        f"{db} is not a SQLite database (it starts with '# paperbot setti'); point --db")
    result = paperbot("runs", "--db", str(db), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"error: {refused.value}"]


async def test_a_truncated_database_is_refused(tmp_path, real_db):
    db = copy_of(real_db, tmp_path)
    size = db.stat().st_size
    os.truncate(db, size // 2 // 4096 * 4096)
    with pytest.raises(StorageError) as refused:
        await Store.open(db)
    assert one_line(refused.value, db).startswith(
        f"run database {db} is truncated ({size // 2 // 4096 * 4096:,} of {size:,} bytes); "
        f"restore it from a backup copy, or recover what is left with sqlite3 {db} "
        f"\".recover\" | sqlite3 recovered.db")


async def test_interior_page_corruption_is_found_at_start(tmp_path, real_db):
    db = copy_of(real_db, tmp_path)
    page = corrupt_a_middle_page(db)
    with sqlite3.connect(db) as conn:  # the header is fine: opening alone notices nothing
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    with pytest.raises(StorageError) as refused:
        await Store.open(db)
    text = one_line(refused.value, db)
    assert text.startswith(f"run database {db} is corrupt (")
    assert f"page {page}:" in text.split(");")[0].lower()
    assert text.endswith(f"sqlite3 {db} \".recover\" | sqlite3 recovered.db and point "
                         f"--db / PAPERBOT_DB_PATH at recovered.db")
    result = paperbot("runs", "--db", str(db), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"error: {text}"]


async def test_a_newer_schema_is_refused(tmp_path, real_db):
    db = copy_of(real_db, tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(SchemaError) as refused:
        await Store.open(db)
    assert isinstance(refused.value, StorageError)
    assert one_line(refused.value, db) == (
        f"run database {db}: schema v999 is newer than this paperbot (v{SCHEMA_VERSION}); "
        f"upgrade paperbot, or point --db / PAPERBOT_DB_PATH at another database")


async def test_a_healthy_copy_opens_with_its_runs(tmp_path, real_db):
    store = await Store.open(copy_of(real_db, tmp_path))
    try:
        assert store.created is False
        assert sorted(r.id for r in await store.runs()) == ["run0", "run1", "run2"]
        assert len(await store.equity_curve("run1")) == 600
        assert await store.integrity_check() == "ok"
    finally:
        await store.close()
        await store.close()  # twice is harmless


# ---- read-only: as root, chmod does not stop writes, so drop the capabilities that bypass it ----
def _without_dac_override() -> None:  # runs in the child before exec
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            os._exit(97)


OPEN_EACH = """
    import asyncio, sys
    from pathlib import Path
    from engine.store.store import Store
    from engine.store.errors import StorageError

    async def main():
        for arg in sys.argv[1:]:
            try:
                store = await Store.open(Path(arg))
            except StorageError as exc:
                print(exc)
            else:
                print("opened", arg)
                await store.close()
    asyncio.run(main())
"""


def test_read_only_files_and_folders_are_refused_at_open(tmp_path, real_db):
    file_ro = tmp_path / "ro-file" / "runs.db"
    folder_ro = tmp_path / "ro-folder" / "runs.db"
    for db in (file_ro, folder_ro):
        db.parent.mkdir()
        shutil.copyfile(real_db, db)
    file_ro.chmod(0o444)
    folder_ro.parent.chmod(0o555)
    try:
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(OPEN_EACH), str(file_ro), str(folder_ro)],
            capture_output=True, text=True, timeout=PROC_TIMEOUT,
            preexec_fn=_without_dac_override)
    finally:
        folder_ro.parent.chmod(0o755)
    if result.returncode == 97:
        pytest.skip("running as root without CAP_SETPCAP: permissions cannot stop writes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"run database {file_ro} is read-only; make it writable (the file, its -wal and -shm "
        f"files and its folder) or copy it elsewhere and point --db / PAPERBOT_DB_PATH at "
        f"the copy",
        f"folder {folder_ro.parent} of run database {folder_ro} is not writable (SQLite "
        f"writes runs.db-wal and runs.db-shm beside the database); fix its permissions or "
        f"choose another --db / PAPERBOT_DB_PATH"]
    assert file_ro.read_bytes() == real_db.read_bytes()
