"""Shared test helpers: hand-made candles, a scripted strategy, the sample data folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from data.frames import OHLCV
from engine.market import MarketData
from engine.portfolio import Portfolio
from engine.strategy import Strategy
from engine.types import Signal

#: The read-only real candles beside the repository (see its SOURCES.md); override the folder
#: with PAPERBOT_SAMPLE_DATA.
SAMPLE_DATA = Path(os.environ.get("PAPERBOT_SAMPLE_DATA") or
                   Path(__file__).resolve().parents[1].parent / "shared" / "data")

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MIN = 60_000
HOUR = 60 * MIN


def candles(rows: list[tuple[float, float, float, float]], start: int = T0,
            step: int = HOUR, volume: float = 1.0) -> OHLCV:
    """OHLCV from (open, high, low, close) rows, one ``step`` apart from ``start``."""
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    n = arr.shape[0]
    return OHLCV(
        timestamp=start + step * np.arange(n, dtype=np.int64),
        open=arr[:, 0].copy(), high=arr[:, 1].copy(), low=arr[:, 2].copy(),
        close=arr[:, 3].copy(), volume=np.full(n, volume),
    )


def flat(n: int, price: float = 100.0, start: int = T0, step: int = HOUR) -> OHLCV:
    """``n`` candles that never move from ``price``."""
    return candles([(price, price, price, price)] * n, start=start, step=step)


class Scripted(Strategy):
    """Emits the signals given per base-candle index; records what it saw."""

    name = "scripted"
    timeframes = ["1h"]

    def __init__(self, script: dict[int, list[Signal]], timeframe: str = "1h",
                 informative: list[str] | None = None) -> None:
        super().__init__({}, timeframe=timeframe)
        self.timeframes = [timeframe, *(informative or [])]
        self.script = script
        self.calls = 0

    def on_candle(self, data: MarketData, portfolio: Portfolio) -> list[Signal] | None:
        i = len(data.base) - 1
        self.calls += 1
        return self.script.get(i)


def die_with_test() -> None:
    """``preexec_fn`` for processes a test starts: the kernel kills them (SIGKILL) when the
    test process dies, so a test run that is killed (a CI timeout) leaves no server behind."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def run_cli(capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    """``paperbot ARGS`` in this process: (exit status, stdout, stderr)."""
    from engine.cli.main import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err
