"""``bench/soak.py`` end to end at a small scale: 2 runs, 40 candles, with the breakdown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = ["3", "6", "10", "13", "16", "20", "23", "26", "30", "33", "36", "40"]


def processes_in(folder: Path) -> list[int]:
    """Pids of processes whose working directory is inside ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(folder) in os.readlink(proc / "cwd"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_soak_resumes_full_windows_reports_memory_and_cleans_up(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--runs", "2", "--candles", "40",
         "--breakdown"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr  # 0 = PASS against the RSS targets
    assert "PASS: end ≤ start + 5 MB" in out
    # both runs resumed with their full 1,000-candle window and kept the 40 replayed candles
    assert "base candles in memory at the end: sma_cross 1,040–1,040, " \
           "rsi_reversion 1,040–1,040" in out
    readings = re.findall(r"^candle +(\d+) of 40 \( *\d+ s\): engine RSS +([\d.]+) MB", out,
                          re.M)
    assert [n for n, _ in readings] == CHECKPOINTS
    assert all(50 < float(rss) < 400 for _, rss in readings)
    assert re.search(r"engine exit after SIGTERM: [\d.]+ s, status 0; no warnings logged", out)
    rows = dict(re.findall(r"^  (start|middle|end) +((?:[\d.]+ +){6}[\d,]+)$", out, re.M))
    assert set(rows) == {"start", "middle", "end"}
    sqlite_mb = float(rows["end"].split()[5])
    assert 0 < sqlite_mb < 10  # the run database's page cache, read from the engine
    # the temporary folder and the engine process are gone
    assert list(tmp_path.iterdir()) == []
    assert processes_in(tmp_path) == []
