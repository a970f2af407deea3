"""What the checks at start cost: ``Store.open`` (with ``PRAGMA quick_check``) on a large database.

Usage: python bench/store_open.py [--mb 100] [--keep PATH]

Builds a run database of about ``--mb`` MB with the real schema (equity points and outbox
events of 20 runs, the tables that grow), closes it, then times ``Store.open`` (preflight,
``quick_check`` of every page, the write probe, migrations) and ``PRAGMA quick_check`` /
``integrity_check`` on their own. The file was just written, so it is in the page cache: a
cold disk adds its read time (100 MB at the volume's read speed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from engine.store.store import Store

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


async def build(path: Path, megabytes: float) -> int:
    """Fill ``path`` to about ``megabytes`` MB; returns the number of rows written."""
    store = await Store.open(path)
    await store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    payload = json.dumps({"exchange": "bybit", "detail": "no data for 60 s " + "x" * 120})
    rows, i = 0, 0
    while path.stat().st_size < megabytes * 1e6:
        conn.execute("BEGIN")
        for _ in range(20_000):
            run, ts = f"run{i % 20:02d}", T0 + (i // 20) * 60_000
            conn.execute("INSERT INTO equity VALUES (?, ?, ?, ?, 'candle')",
                         (run, ts, 10_000.0 + i % 997, 10_000.0))
            conn.execute("INSERT INTO events (run_id, ts, type, payload) VALUES (?, ?, ?, ?)",
                         (run, ts, "feed_lost", payload))
            i += 1
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows += 40_000
    conn.close()
    return rows


async def timed_open(path: Path) -> float:
    started = time.perf_counter()
    store = await Store.open(path)
    took = time.perf_counter() - started
    await store.close()
    return took


def timed_pragma(path: Path, pragma: str) -> float:
    conn = sqlite3.connect(path)
    started = time.perf_counter()
    result = conn.execute(f"PRAGMA {pragma}").fetchone()[0]
    took = time.perf_counter() - started
    conn.close()
    assert result == "ok", result
    return took


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="database size to build, MB")
    parser.add_argument("--keep", type=Path, help="build the database here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "runs.db"
        rows = await build(path, args.mb)
        size = path.stat().st_size / 1e6
        opens = [await timed_open(path) for _ in range(3)]
        quick = timed_pragma(path, "quick_check")
        full = timed_pragma(path, "integrity_check")
    print(f"database: {size:.0f} MB, {rows:,} rows")
    print(f"Store.open (checks + quick_check): best {min(opens):.2f} s, "
          f"worst {max(opens):.2f} s of 3")
    print(f"PRAGMA quick_check alone: {quick:.2f} s; PRAGMA integrity_check: {full:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
