"""A strategy that raises says so in one line naming the strategy, the exception and its file
and line — in backtests (CLI exit 2, --traceback for the trace; ephemeral in Discord) — and a
market that does not trade is refused at /forward start."""

from __future__ import annotations

import textwrap

import pytest

from engine.cli.main import main
from engine.errors import ServiceError
from engine.forward.engine import RunSpec
from engine.runtime import Runtime
from tests.bot_helpers import TRADER, bot_env
from tests.forward_helpers import MINUTES, settings_for
from tests.helpers import SAMPLE_DATA
from tests.standins.exchange import CandleSeries, ExchangeStandin

RAISES = textwrap.dedent('''
    from engine.strategy import Strategy


    class MyBreakout(Strategy):
        timeframes = ["1h"]

        def on_candle(self, data, portfolio):
            if len(data.base) > 30:
                return 1 / 0.0
            return None
''')
LINE = "strategy my_breakout raised ZeroDivisionError at my_breakout.py:10: float division by zero"


def test_backtest_of_a_raising_strategy_is_one_line_and_traceback_on_request(tmp_path,
                                                                             capsys):
    (tmp_path / "my_breakout.py").write_text(RAISES)
    args = ["backtest", "--strategy", "my_breakout", "--symbol", "BTC/USDT", "--data-dir",
            str(SAMPLE_DATA), "--strategy-dir", str(tmp_path), "--no-charts", "--start",
            "2019-01-01", "--end", "2019-01-31"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == f"error: {LINE}\n"
    assert main([*args, "--traceback"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert 'my_breakout.py", line 10, in on_candle' in err and err.endswith(f"error: {LINE}\n")


async def test_backtest_of_a_raising_strategy_in_discord_is_ephemeral(tmp_path):
    async with bot_env(tmp_path) as env:
        (tmp_path / "strategies" / "my_breakout.py").write_text(RAISES)
        record = await env.ds.invoke("backtest run", {"strategy": "my_breakout",
                                                  "symbol": "BTC/USDT", "timeframe": "1h",
                                                  "start": "2019-01-01", "end": "2019-01-31"},
                                     user_id=TRADER)
        await record.wait_done(lambda r: r.final is not None and bool(r.final.embeds),
                               timeout=60)
    assert record.ephemeral and LINE in record.final.embeds[0]["description"]


async def test_forward_start_refuses_a_listed_market_without_candles(tmp_path):
    btc = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=300, cursor=200)
    eth = CandleSeries.from_parquet(MINUTES, "ETH/USDT", "1m", count=300, cursor=0)
    async with ExchangeStandin([btc, eth]) as ex, \
            Runtime(settings_for(tmp_path, ex, "bybit")) as runtime:
        with pytest.raises(ServiceError) as refused:
            await runtime.service.start_run(RunSpec("sma_cross", "ETH/USDT", timeframe="1m"))
        runs = await runtime.service.runs()
    assert str(refused.value) == ("bybit has no 1m candles of ETH/USDT for the warm-up: the "
                                  "market is not trading; pick another symbol")
    assert runs == []
