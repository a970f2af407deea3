"""Shared helpers of the benchmarks: the real 1m candle year, peak memory."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import numpy as np

from data.ohlcv import OHLCV

SHARED_DATA = Path(os.environ.get("PAPERBOT_SAMPLE_DATA") or
                   Path(__file__).resolve().parents[1].parent / "shared" / "data")
YEAR_OF_MINUTES = 525_600
START = 1_577_836_800_000  # 2020-01-01 00:00 UTC: the synthetic timeline's origin


def joined_minutes(n: int = YEAR_OF_MINUTES, symbol: str = "BTC-USDT") -> OHLCV:
    """``n`` real 1m candles: every real BTC/USDT 1m window end to end, in time order.

    Timestamps are rewritten to ``START + i × 1 min`` so the series is contiguous; prices are
    untouched, so the joins between windows are price jumps (as a weekend gap would be).
    Read with pyarrow straight into preallocated numpy columns (no pandas frames), and
    pyarrow's pool is released afterwards: the candles cost their 25 MB and little more.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    pa.set_memory_pool(pa.system_memory_pool())  # freed buffers go back to malloc at once
    files = sorted(SHARED_DATA.glob(f"windows/binance_{symbol}_1m_*.parquet"))
    files.append(SHARED_DATA / f"binance_{symbol}_1m.parquet")
    firsts = [int(pq.read_table(f, columns=["timestamp"]).column(0)[0].as_py()) for f in files]
    columns = {c: np.empty(n) for c in ("open", "high", "low", "close", "volume")}
    filled = 0
    for _, path in sorted(zip(firsts, files, strict=True)):
        if filled >= n:
            break
        table = pq.read_table(path, columns=list(columns))
        take = min(n - filled, table.num_rows)
        for name, out in columns.items():
            out[filled:filled + take] = table.column(name).to_numpy()[:take]
        filled += take
        del table
    pa.default_memory_pool().release_unused()
    if filled < n:
        raise SystemExit(f"only {filled} real 1m candles found under {SHARED_DATA}")
    return OHLCV(START + 60_000 * np.arange(n, dtype=np.int64), **columns)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """The kB fields of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``, …) as numbers of kB.

    Raises:
        OSError: no such process (or not Linux).
    """
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[name] = int(parts[0])
    return out


def rss_mb() -> float:
    """Resident set size of this process now, MiB (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
