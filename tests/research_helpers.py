"""Shared set-up of the research tests: a synthetic problem with a known best, user strategies.

``ramp_settings`` writes 100 hourly candles whose close climbs from 100 to 140 (candle 40)
and falls back, and the ``ramp`` strategy, which buys at candle ``entry`` and sells ``hold``
candles later: the best return is entry=0, hold=40, exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data.cache import cache_path, write_candles
from engine.settings import Settings, load_settings
from tests.helpers import HOUR, T0

RAMP = '''
import os
import time

from engine.strategy import Strategy
from engine.types import Signal


class Ramp(Strategy):
    """Long at candle `entry`, out `hold` candles later."""

    name = "ramp"
    timeframes = ["1h"]
    params = {"entry": 0, "hold": 10, "pause_ms": 0, "die_at_hold": -1, "raise_at_hold": -1}
    param_space = {"entry": "0:3", "hold": "10:60:5"}

    def on_init(self, data):
        if self.p.hold == self.p.die_at_hold:
            os._exit(3)  # a worker process that dies
        if self.p.hold == self.p.raise_at_hold:
            raise RuntimeError("boom at hold %d" % self.p.hold)
        if self.p.pause_ms:
            time.sleep(self.p.pause_ms / 1000)

    def on_candle(self, data, portfolio):
        i = len(data.base) - 1
        if i == self.p.entry and portfolio.is_flat:
            return [Signal.open_long(50.0)]
        if i == self.p.entry + self.p.hold and portfolio.positions:
            return [Signal.close_all()]
        return None
'''

LEAKY = '''
import numpy as np

from engine.strategy import Strategy
from engine.types import Signal


class Leaky(Strategy):
    """Reads the next candle's close through an indicator (look-ahead)."""

    name = "leaky"
    timeframes = ["1h"]

    def on_init(self, data):
        self.future = self.indicator(lambda c: np.roll(c, -1), data.base.close,
                                     name="next_close")

    def on_candle(self, data, portfolio):
        if self.future[-1] > data.base.close[-1] and portfolio.is_flat:
            return [Signal.open_long(50.0)]
        if self.future[-1] < data.base.close[-1] and portfolio.positions:
            return [Signal.close_all()]
        return None
'''


def ramp_closes(n: int = 100) -> np.ndarray:
    """100 + i up to candle 40, then down by 1 a candle."""
    i = np.arange(n, dtype=np.float64)
    return np.where(i <= 40, 100.0 + i, 140.0 - (i - 40))


def write_strategies(folder: Path) -> Path:
    """``ramp.py`` and ``leaky.py`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ramp.py").write_text(RAMP)
    (folder / "leaky.py").write_text(LEAKY)
    return folder


def ramp_settings(tmp_path: Path, **overrides) -> Settings:
    """Settings over a cache holding the ramp candles (binance RAMP/USDT 1h)."""
    close = ramp_closes()
    n = close.size
    frame = pd.DataFrame({"timestamp": T0 + HOUR * np.arange(n, dtype=np.int64),
                          "open": close, "high": close + 0.5, "low": close - 0.5,
                          "close": close, "volume": np.ones(n)})
    data_dir = tmp_path / "cache"
    write_candles(cache_path(data_dir, "binance", "RAMP/USDT", "1h"), frame)
    values = dict(data_dir=data_dir, strategy_dir=write_strategies(tmp_path / "strategies"),
                  db_path=tmp_path / "runs.db", out_dir=tmp_path / "out", offline=True,
                  fee_bps=0.0, slippage_bps=0.0)
    values.update(overrides)
    return load_settings(**values)
