"""Reports of ``soak.py --trace`` and ``soak.py --breakdown``: what grew in the engine process.

Both compare the readings the engine wrote (``bench/soak_engine.py``) at the soak's start and
end: tracemalloc snapshots (allocation sites, ``file:line``) or ``stats`` files (RSS split
into glibc heap in use / held free, mmapped, SQLite; live objects per type).
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

MIB = 2**20


def trace_report(snapshots: dict[str, Path], frames: int, top: int = 15) -> str:
    """The allocation sites that grew most from the start to the end snapshot (and, with
    ``frames`` > 1, the three tracebacks that grew most)."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__),
              tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
              tracemalloc.Filter(False, "<unknown>")]
    start = tracemalloc.Snapshot.load(str(snapshots["start"])).filter_traces(ignore)
    end = tracemalloc.Snapshot.load(str(snapshots["end"])).filter_traces(ignore)
    lines = [f"traced Python memory: start {_traced_mb(start):.1f} MB, end "
             f"{_traced_mb(end):.1f} MB; sites that grew most, start → end:"]
    for diff in [d for d in end.compare_to(start, "lineno") if d.size_diff > 0][:top]:
        frame = diff.traceback[0]
        lines.append(f"  {diff.size_diff / 1024:+9.1f} KiB {diff.count_diff:+7} blocks  "
                     f"{frame.filename}:{frame.lineno}")
    if frames > 1:
        lines.append("largest growing tracebacks (innermost last):")
        for diff in [d for d in end.compare_to(start, "traceback") if d.size_diff > 0][:3]:
            lines.append(f"  {diff.size_diff / 1024:+9.1f} KiB")
            lines += [f"      {f.filename}:{f.lineno}" for f in list(diff.traceback)[-6:]]
    return "\n".join(lines)


def breakdown_report(files: dict[str, Path], top: int = 12) -> str:
    """RSS and its parts at each labelled reading, then the object types that grew most."""
    readings = {label: json.loads(path.read_text()) for label, path in files.items()}
    parts = [("rss_before_gc", "RSS"), ("rss", "after gc"), ("heap_in_use", "heap in use"),
             ("heap_free", "heap free"), ("mmapped", "mmapped"), ("sqlite", "SQLite")]
    lines = ["memory of the engine, MB:  " + "  ".join(f"{name:>11}" for _, name in parts)
             + "  Python blocks"]
    for label, values in readings.items():
        lines.append(f"  {label:<24}" + "  ".join(
            f"{values.get(key, float('nan')) / MIB:11.1f}" for key, _ in parts)
            + f"  {values['python_blocks']:13,}")
    for first, last in (("start", "end"), ("middle", "end")):
        before, after = readings[first]["types"], readings[last]["types"]
        grown = sorted(((after.get(t, 0) - before.get(t, 0), t) for t in set(before) | set(after)),
                       reverse=True)[:top]
        lines.append(f"live objects that grew most, {first} → {last}: " + (", ".join(
            f"{name} {diff:+,}" for diff, name in grown if diff > 0) or "none"))
    return "\n".join(lines)


def _traced_mb(snapshot: tracemalloc.Snapshot) -> float:
    return sum(s.size for s in snapshot.statistics("filename")) / MIB
