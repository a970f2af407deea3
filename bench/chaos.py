"""Chaos replay of a forward run: malformed frames, a 12 s write lock on the database, SIGTERM,
a restart while the exchange is down, the exchange coming back — then the run's trades are
compared with a backtest of the same candles.

    python bench/chaos.py [--lock 12] [--down 3]

Prints the timeline, the SIGTERM-to-exit times and the checks (the same as tests/test_chaos.py,
which uses a shorter lock). Needs the sample candles in ../shared/data.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos import check, run_chaos


async def main(lock_s: float, down_s: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = await run_chaos(Path(tmp), lock_s=lock_s, down_s=down_s)
        for name, at in result.phases:
            print(f"{at:6.1f} s  {name}")
        exits = ", ".join(f"{took:.2f} s (status {code})" for code, took in result.sigterm_exits)
        print(f"SIGTERM → exit: {exits} (target ≤ 8 s)")
        counts = check(result)
        print(f"{counts['candles']:,} candles processed exactly once; {counts['trades']} closed "
              f"trades equal the backtest's ({counts['open']} still open); every check passed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=float, default=12.0, help="seconds the DB stays locked")
    parser.add_argument("--down", type=float, default=3.0,
                        help="seconds the exchange is down around the restart")
    args = parser.parse_args()
    asyncio.run(main(args.lock, args.down))
