"""Chaos in one replay — malformed frames, a write lock beyond the busy timeout, SIGTERM, a
restart while the exchange is down — and the run ends exactly as a backtest of its candles
(bench/chaos.py runs the same scenario with the issue's 12 s lock)."""

from __future__ import annotations

from tests.chaos import check, run_chaos


async def test_chaos_replay_ends_like_the_backtest_with_every_candle_once(tmp_path):
    result = await run_chaos(tmp_path, lock_s=6.0)
    counts = check(result)
    assert counts["trades"] >= 10
