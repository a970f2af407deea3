"""The heap-fragmentation setting of always-on processes (engine.allocator)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import ctypes, sys
    import numpy as np
    from engine.allocator import limit_heap_fragmentation

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                    "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    big = np.ones(131_072)  # 1 MB, mapped; freeing it raises glibc's dynamic threshold to 1 MB
    del big
    applied = limit_heap_fragmentation() if sys.argv[1] == "on" else False
    before = libc.mallinfo2().hblks
    kept = [np.ones(12_800) for _ in range(50)]  # 50 buffers of 100 kB
    print(applied, libc.mallinfo2().hblks - before)
""")


def _run(*args: str, **env: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                         timeout=60, env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_buffers_above_64_kib_get_their_own_mapping_returned_when_freed():
    # default: the dynamic threshold has risen, 100 kB buffers come from the heap
    assert _run("off") == "False 0"
    # fixed threshold: once the free room at the heap's top is used, each 100 kB buffer is
    # its own mapping (unmapped when freed)
    applied, mapped = _run("on").split()
    assert applied == "True" and 40 <= int(mapped) <= 50
    # the operator's own MALLOC_MMAP_THRESHOLD_ wins: nothing changed
    assert _run("on", MALLOC_MMAP_THRESHOLD_="1048576") == "False 0"
