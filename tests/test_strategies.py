"""Strategy parameters, discovery by name, and the bundled strategies on real candles."""

from __future__ import annotations

import textwrap

import pytest

from data.loader import CandleLoader
from engine.backtest import BacktestConfig, run_backtest
from engine.registry import UnknownStrategyError, discover, get_strategy
from engine.strategy import ParamError, parse_param_pairs, resolve_params
from strategies.sma_cross import SmaCross
from tests.helpers import SAMPLE_DATA

DECLARED = {"fast": 20, "ratio": 1.5, "short": False, "mode": "close"}


def test_string_overrides_are_converted_to_the_declared_types():
    got = resolve_params(DECLARED, {"fast": "5", "ratio": "2", "short": "yes", "mode": "hl2"})
    assert got == {"fast": 5, "ratio": 2.0, "short": True, "mode": "hl2"}
    assert resolve_params(DECLARED, {"ratio": 3})["ratio"] == 3.0


@pytest.mark.parametrize("overrides,message", [
    ({"fast": "5.5"}, "fast takes int values"),
    ({"fast": True}, "fast takes int values"),
    ({"short": "maybe"}, "short takes bool values"),
    ({"fsat": "5"}, "did you mean fast"),
])
def test_bad_overrides_are_explained(overrides, message):
    with pytest.raises(ParamError, match=message):
        resolve_params(DECLARED, overrides)


def test_param_pairs_parse_and_reject_garbage():
    assert parse_param_pairs("fast=5 slow=20") == {"fast": "5", "slow": "20"}
    assert parse_param_pairs(["fast=5"]) == {"fast": "5"}
    with pytest.raises(ParamError, match="not key=value"):
        parse_param_pairs("fast 5")


def test_semantic_validation():
    with pytest.raises(ParamError, match="fast < slow"):
        SmaCross({"fast": "50", "slow": "20"})


def test_discovery_lists_bundled_strategies_and_unknown_names_list_them():
    assert {"sma_cross", "rsi_reversion", "donchian_breakout", "mtf_trend"} <= set(discover())
    with pytest.raises(UnknownStrategyError, match=r"Did you mean sma_cross.*Available: "):
        get_strategy("sma_crss")


def test_user_directory_strategies_are_discovered(tmp_path):
    (tmp_path / "my_breakout.py").write_text(textwrap.dedent('''
        from engine.strategy import Strategy
        from engine.types import Signal

        class MyBreakout(Strategy):
            """Buys every 10th candle."""
            timeframes = ["1h"]
            params = {"every": 10}

            def on_candle(self, data, portfolio):
                if len(data.base) % self.p.every == 0 and portfolio.is_flat:
                    return [Signal.open_long(50)]
                if portfolio.positions and len(data.base) % self.p.every == 5:
                    return [Signal.close_all()]
                return None
    '''))
    (tmp_path / "broken.py").write_text("this is not python(")
    info = get_strategy("my_breakout", tmp_path)
    assert info.description == "Buys every 10th candle." and info.params == {"every": 10}
    candles, _ = CandleLoader(SAMPLE_DATA).load("binance", "BTC/USDT", "1h")
    result = run_backtest(info.cls({"every": "20"}), candles.take(slice(0, 400)),
                          BacktestConfig("BTC/USDT", "1h"))
    assert len(result.trades) == 20


@pytest.mark.parametrize("name,tf,sides", [
    ("sma_cross", "1h", {"long"}),
    ("rsi_reversion", "1h", {"long"}),
    ("donchian_breakout", "4h", {"long", "short"}),
    ("mtf_trend", "1h", {"long", "short"}),
])
def test_bundled_strategies_trade_real_candles(name, tf, sides):
    candles, _ = CandleLoader(SAMPLE_DATA).load("binance", "BTC/USDT", tf)
    result = run_backtest(discover()[name].cls(None, timeframe=tf), candles,
                          BacktestConfig("BTC/USDT", tf))
    assert len(result.trades) >= 10
    assert {t.side for t in result.trades} == sides
    assert result.final_equity == pytest.approx(10_000 + sum(t.pnl for t in result.trades))


def test_mtf_trend_refuses_a_base_at_or_above_4h():
    with pytest.raises(ParamError, match="below 4h"):
        discover()["mtf_trend"].cls(None, timeframe="4h")



LIVE = """
import sys
import numpy as np
import engine.forward.engine, engine.service
from data.ohlcv import OHLCV
from engine.backtest import BacktestConfig, run_backtest
from engine.registry import discover

traded = {}
for name, info in sorted(discover().items()):
    tf = "1h"
    strategy = info.cls({}, timeframe=tf)
    n = strategy.warmup_candles() + 2_000
    ts = 1_704_067_200_000 + 3_600_000 * np.arange(n, dtype=np.int64)
    close = 100.0 + 10 * np.sin(np.arange(n) / 7) + np.arange(n) * 0.01
    symbol = "BTC/USDT:USDT" if name == "oi_divergence" else "BTC/USDT"
    result = run_backtest(strategy, OHLCV(ts, close - 0.1, close + 0.3, close - 0.3, close,
                                          np.ones(n)), BacktestConfig(symbol, tf))
    traded[name] = len(result.trades)
print(traded)
print(sorted(m for m in ("pandas", "pyarrow", "matplotlib", "talib") if m in sys.modules))
"""


def test_every_bundled_strategy_computes_its_indicators_without_pandas():
    """A forward process stays small: no bundled strategy's indicators pull pandas (≈ 95 MB
    with pyarrow) into it — importing TA-Lib does, so the engine's own indicators never use
    it (the strategies' computations are the same in backtests and forward runs)."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", LIVE], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    traded, loaded = done.stdout.strip().splitlines()
    counts = ast.literal_eval(traded)
    assert {"donchian_breakout", "mtf_trend", "sma_cross", "trend_scaler"} <= set(counts)
    assert counts["donchian_breakout"] > 0 and counts["sma_cross"] > 0
    assert loaded == "[]"
