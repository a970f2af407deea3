"""``paperbot …`` with memory readings on demand: the engine child of ``soak.py --trace`` and
``soak.py --breakdown``.

Usage: python [-X tracemalloc=FRAMES] bench/soak_engine.py OUT_DIR forward --db PATH …

Runs ``engine.cli.main.main`` with the remaining arguments, exactly as the ``paperbot`` console
script does, and answers two signals (handled in the main thread, between two bytecodes of the
event loop):

- SIGUSR1 writes a tracemalloc snapshot to ``OUT_DIR/snapshot-<k>.pickle`` (k = 0, 1, …);
- SIGUSR2 writes ``OUT_DIR/stats-<k>.json``: where the resident memory is (see ``stats``),
  after a full garbage collection (``rss_before_gc``: the RSS before it).

Files are written under a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import proc_status


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (bytes, size_t fields)."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def rss() -> int:
    """Resident set size of this process, bytes."""
    return proc_status()["VmRSS"] * 1024


def stats() -> dict:
    """Where this process's memory is, bytes: ``rss``; glibc malloc ``heap_in_use`` (sbrk
    heap and every arena, allocated), ``heap_free`` (held but free: fragmentation),
    ``mmapped``; ``sqlite`` (the SQLite library's own allocations: page cache, statements);
    ``python_blocks`` (live Python allocations, a count); ``traced`` (tracemalloc, when
    tracing); ``types``: live objects per type name (gc-tracked objects only)."""
    out: dict = {"rss": rss(), "python_blocks": sys.getallocatedblocks()}
    libc = ctypes.CDLL(None)
    if hasattr(libc, "mallinfo2"):
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
        out.update(heap_in_use=info.uordblks, heap_free=info.fordblks, mmapped=info.hblkhd)
    try:
        import _sqlite3

        used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
        used.restype = ctypes.c_int64
        out["sqlite"] = int(used())
    except (ImportError, OSError, AttributeError):
        pass
    if tracemalloc.is_tracing():
        out["traced"] = tracemalloc.get_traced_memory()[0]
    out["types"] = dict(Counter(type(o).__name__ for o in gc.get_objects()).most_common(60))
    return out


def install(folder: Path) -> None:
    """Answer SIGUSR1 (tracemalloc snapshot) and SIGUSR2 (``stats``) with files in ``folder``."""
    taken = {"snapshot": 0, "stats": 0}

    def write(kind: str, suffix: str, save) -> None:
        path = folder / f"{kind}-{taken[kind]}.{suffix}"
        partial = path.with_suffix(".part")
        save(partial)
        os.replace(partial, path)
        taken[kind] += 1

    def snapshot(signum: int, frame: FrameType | None) -> None:
        gc.collect()
        write("snapshot", "pickle", lambda p: tracemalloc.take_snapshot().dump(str(p)))

    def readings(signum: int, frame: FrameType | None) -> None:
        before = rss()
        gc.collect()
        write("stats", "json", lambda p: p.write_text(json.dumps({**stats(),
                                                                  "rss_before_gc": before})))

    signal.signal(signal.SIGUSR1, snapshot)
    signal.signal(signal.SIGUSR2, readings)


def main() -> int:
    install(Path(sys.argv[1]))
    from engine.cli.main import main as paperbot

    return paperbot(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
