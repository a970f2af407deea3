"""Perpetuals live: a forward run reads open interest and funding from the ticker stream, books
funding and liquidates exactly like a backtest over what it stored; bad ticker frames are
skipped; the live process stays without pandas; runs refuse what they cannot do."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from data.cache import cache_path, write_candles
from data.frames import OHLCV
from data.live.tickers import TickerBook, TickerUpdate, parse_bybit_ticker
from engine.backtest_job import run_backtest_job
from engine.backtest_request import BacktestRequest
from engine.errors import ServiceError
from engine.forward.engine import RunSpec
from engine.reporting import iso
from tests.forward_helpers import connected_and_idle, forward_env, until

REPO = Path(__file__).resolve().parent.parent

#: Reads open interest and funding, holds across settlements, at a leverage that liquidates.
PERP_READER = textwrap.dedent('''
    import math

    from engine.strategy import Strategy
    from engine.types import Signal

    class PerpReader(Strategy):
        """Long when open interest rose over ``lookback`` candles and funding is below
        ``funding_max``, else short; half the trades without a stop (liquidation decides)."""
        timeframes = ["1m", "5m"]
        params = {"lookback": 15, "hold": 37, "size": 400.0, "funding_max": 0.0002}

        def warmup_candles(self):
            return 60

        def on_init(self, data):
            self.oi = data.base.open_interest
            self.funding = data.base.funding_rate
            self.k = 0

        def on_candle(self, data, portfolio):
            if portfolio.positions:
                return None
            now, then, rate = self.oi[-1], self.oi[-self.p.lookback], self.funding[-1]
            if math.isnan(now) or math.isnan(then) or math.isnan(rate):
                return None
            self.k += 1
            close = data.base.close[-1]
            tag = f"oi {now:.1f} funding {rate:.6f}"
            if now > then and rate < self.p.funding_max:
                stop = close * 0.995 if self.k % 2 else None
                return [Signal.open_long(self.p.size, stop_loss=stop, max_hold=self.p.hold,
                                         tag=tag)]
            stop = close * 1.005 if self.k % 2 else None
            return [Signal.open_short(self.p.size, stop_loss=stop, max_hold=self.p.hold,
                                      tag=tag)]
''')

CURSOR, REPLAYED, LEVERAGE = 300, 1_000, 80.0


def comparable(trade) -> dict:
    fields = dataclasses.asdict(trade)
    fields.pop("symbol")
    fields.pop("settled_on_recovery")
    return fields


async def test_forward_run_on_a_perpetual_equals_the_backtest_over_what_it_stored(tmp_path):
    async with forward_env(tmp_path, start=420, count=CURSOR + REPLAYED + 10,
                           cursor=CURSOR) as env:
        (env.settings.strategy_dir / "perp_reader.py").write_text(PERP_READER)
        record = await env.runtime.service.start_run(RunSpec(
            "perp_reader", "BTC/USDT:USDT", timeframe="1m", leverage=LEVERAGE))
        await env.ex.wait_for_subscription("bybit", "tickers.BTCUSDT")
        live = env.runtime.engine.runs[record.id]
        await connected_and_idle(live)
        market = (await live.source.markets())["BTC/USDT:USDT"]
        assert market["limits"]["leverage"]["max"] == 100  # the stand-in's leverageFilter
        # paced in chunks, so the run never falls further behind its feed than the ticker
        # book's 600 states (a run further behind takes open interest from REST instead)
        for chunk in range(0, REPLAYED, 200):
            await env.ex.replay("BTC/USDT", "1m", 200)
            last = int(env.series.ts[CURSOR + chunk + 199])
            await until(lambda last=last: live.last_candle_ts == last, timeout=60,
                        what="replay processed")
        forward = await env.runtime.service.trades(record.id)
        forward_exits = await env.runtime.store.exits(record.id)
        still_open = [(p.id, p.side, p.entry_price, p.funding) for p in live.portfolio.positions]
        stored = await env.runtime.service.run_record(record.id)
        oi_seen = live.market.base.open_interest.values.copy()
        book = live.perp.book
        assert book is not None and book.messages >= REPLAYED  # the values came live
        assert live.feed.stats.malformed == 0

    # what the run saw is stored; a backtest of the same candles reads it back (--db)
    s = env.series
    lo = CURSOR - 60
    cache = env.settings.data_dir
    write_candles(cache_path(cache, "bybit", "BTC/USDT:USDT", "1m"), OHLCV(
        s.ts[lo:CURSOR + REPLAYED], s.open[lo:CURSOR + REPLAYED], s.high[lo:CURSOR + REPLAYED],
        s.low[lo:CURSOR + REPLAYED], s.close[lo:CURSOR + REPLAYED],
        s.volume[lo:CURSOR + REPLAYED]).to_frame())
    report = run_backtest_job(BacktestRequest(
        "perp_reader", "BTC/USDT:USDT", exchange="bybit", timeframe="1m",
        start=iso(int(s.ts[CURSOR])).replace(" ", "T"),
        end=iso(int(s.ts[CURSOR + REPLAYED - 1]) + 60_000).replace(" ", "T"),
        balance=10_000.0, fee_bps=10.0, slippage_bps=0.0, charts=False,
        fetch_missing=False, leverage=LEVERAGE), env.settings)
    result = report.result
    closed = [t for t in result.trades if t.exit_reason != "end_of_data"]
    assert any("as forward runs saw them" in w for w in report.warnings)

    assert stored.leverage == LEVERAGE and stored.maintenance_margin_rate == 0.005
    assert len(forward) >= 8, "too few trades to prove parity"
    paid = [t for t in forward if t.funding]
    # held across the settlements of 16:00 and 00:00 UTC: one paid, one received
    assert len(paid) == 2 and {t.funding > 0 for t in paid} == {True, False}
    assert {t.exit_reason for t in forward} >= {"time_exit", "liquidation"}
    assert [comparable(t) for t in forward] == [comparable(t) for t in closed]
    assert forward_exits == [e for e in result.exits if e.reason != "end_of_data"]
    assert [(t.id, t.side, t.entry_price, t.funding) for t in result.trades
            if t.exit_reason == "end_of_data"] == still_open
    assert result.metrics.funding_paid == pytest.approx(
        -sum(t.funding for t in result.trades))
    assert np.isfinite(oi_seen[-REPLAYED:]).all()  # (the tags show what each entry read)


async def test_a_malformed_ticker_frame_is_skipped_and_the_feed_goes_on(tmp_path):
    async with forward_env(tmp_path, start=420, count=400, cursor=300) as env:
        record = await env.runtime.service.start_run(RunSpec(
            "sma_cross", "BTC/USDT:USDT", timeframe="1m", params={"fast": "5", "slow": "20"}))
        await env.ex.wait_for_subscription("bybit", "tickers.BTCUSDT")
        live = env.runtime.engine.runs[record.id]
        await until(lambda: live.perp.book is not None and live.perp.book.latest is not None,
                    what="ticker snapshot")
        book, feed = live.perp.book, live.feed
        now = env.ex.now_ms
        topic = "tickers.BTCUSDT"
        await env.ex.tickers.send(topic, {"symbol": "BTCUSDT", "openInterest": "lots"}, now)
        await env.ex.tickers.send(topic, [{"symbol": "BTCUSDT"}], now)  # data not an object
        await env.ex.tickers.send(topic, {"fundingRate": "0.9"}, now)  # not a funding rate
        await env.ex.send_raw('{"topic": "tickers.BTCUSDT", "type": "delta", "data": {')
        await env.ex.tickers.send(topic, {"symbol": "BTCUSDT", "openInterest": "12345.5"}, now)
        await until(lambda: book.latest.open_interest == 12345.5, what="the good frame")
        assert feed.stats.malformed == 4 and feed.stats.connects == 1
        await env.ex.emit_candle("BTC/USDT", "1m")
        first = int(env.series.ts[300])
        await until(lambda: live.last_candle_ts == first, what="the next candle")
        assert live.market.base.open_interest[-1] == book.at(first + 60_000).open_interest
        assert feed.stats.malformed == 4 and feed.connected


def test_ticker_messages_fold_into_the_state_at_each_close():
    topic = "tickers.BTCUSDT"
    snap = parse_bybit_ticker({"type": "snapshot", "ts": 1_000, "data": {
        "symbol": "BTCUSDT", "openInterest": "100.5", "fundingRate": "0.0001",
        "nextFundingTime": "28800000", "lastPrice": "1"}}, topic)
    assert snap == TickerUpdate(topic, "BTCUSDT", "snapshot", 1_000, 100.5, 0.0001, 28_800_000)
    book = TickerBook()
    book.apply(snap)
    book.apply(parse_bybit_ticker({"type": "delta", "ts": 2_000,
                                   "data": {"openInterest": "101"}}, topic))
    book.apply(parse_bybit_ticker({"type": "delta", "ts": 28_800_000, "data": {
        "fundingRate": "-0.0002", "nextFundingTime": "57600000"}}, topic))
    book.apply(parse_bybit_ticker({"type": "delta", "ts": 1_500, "data": {
        "openInterest": "1"}}, topic))  # older than the state: dropped
    assert (book.at(1_999).open_interest, book.at(2_000).open_interest) == (100.5, 101.0)
    assert book.at(999) is None and book.stale == 1
    assert book.latest.funding_rate == -0.0002 and book.latest.open_interest == 101.0
    # the rate announced for 08:00 is the one settled when the next time moved on
    assert book.settled == {28_800_000: 0.0001}
    assert book.settlements_until(28_799_999) == {}
    assert book.settlements_until(57_600_000) == {28_800_000: 0.0001, 57_600_000: -0.0002}
    for bad in ({"type": "delta", "data": {}}, {"type": "partial", "ts": 1, "data": {}},
                {"type": "delta", "ts": 1, "data": {"openInterest": "-5"}},
                {"type": "delta", "ts": 1, "data": {"nextFundingTime": "soon"}}):
        with pytest.raises(ValueError):
            parse_bybit_ticker(bad, topic)


def test_a_run_behind_its_feed_still_pays_the_settlement_in_its_candle():
    """The ticker book keeps the last 600 states: a run further behind its feed than that
    (e.g. candles held during a storage outage) finds no state at the close, and must still
    book the settlement the stream already announced — in the candle that holds it."""
    from engine.forward.perp_live import LiveInputs
    from engine.types import Candle

    topic, hour = "tickers.BTCUSDT", 3_600_000
    book = TickerBook(keep=3)
    book.apply(parse_bybit_ticker({"type": "snapshot", "ts": 7 * hour, "data": {
        "symbol": "BTCUSDT", "openInterest": "100", "fundingRate": "0.0003",
        "nextFundingTime": str(8 * hour)}}, topic))
    for k in range(1, 6):  # the stream runs on past 08:00: the 07:00 state falls out
        book.apply(parse_bybit_ticker({"type": "delta", "ts": 8 * hour + k * 60_000, "data": {
            "openInterest": str(100 + k), "nextFundingTime": str(16 * hour)}}, topic))
    assert book.at(8 * hour) is None and book.settled == {8 * hour: 0.0003}
    inputs = LiveInputs("bybit", "BTC/USDT:USDT", "1m", source=None)
    inputs.book = book
    inputs.last_close = 8 * hour - 60_000
    _, due = inputs.point(Candle(8 * hour - 60_000, 1.0, 1.0, 1.0, 1.0, 1.0))
    assert due == 0.0003 and inputs.settlements == {8 * hour: 0.0003}  # paid at 08:00
    _, due = inputs.point(Candle(8 * hour, 1.0, 1.0, 1.0, 1.0, 1.0))
    assert due is None and book.latest.open_interest == 105.0  # not paid twice


async def test_forward_runs_refuse_what_they_cannot_do(tmp_path):
    async with forward_env(tmp_path, count=400, cursor=300) as env:
        service = env.runtime.service
        cases = [
            (RunSpec("sma_cross", "BTC/USDT:USDT", exchange="binance"),
                "BTC/USDT:USDT is a perpetual: its live open interest and funding come from "
                "bybit's ticker stream, which binance lacks here; use exchange bybit, or the "
                "spot symbol BTC/USDT"),
            (RunSpec("sma_cross", "BTC/USDT", leverage=3),
                "leverage 3 needs a perpetual: BTC/USDT is spot, which trades at leverage 1 "
                "(use BTC/USDT:USDT for the perpetual)"),
            (RunSpec("sma_cross", "BTC/USDT:USDT", leverage=150),
                "leverage 150 is above the maximum of 100x for BTC/USDT:USDT on bybit "
                "(paperbot's table, docs/perpetuals.md)"),
            (RunSpec("sma_cross", "BTC/USDT:USDT", leverage=0.5),
                "leverage must be a number from 1 to 100 for BTC/USDT:USDT on bybit, got 0.5"),
        ]
        for spec, message in cases:
            with pytest.raises(ServiceError) as caught:
                service.check_run(spec)
            assert str(caught.value) == message
        # the exchange's own maximum (its market's limits) wins once the markets are loaded
        env.runtime.engine.source("bybit", "linear")._markets = {"BTC/USDT:USDT": {
            "active": True, "limits": {"leverage": {"max": 50}}}}
        with pytest.raises(ServiceError) as caught:
            await service.start_run(RunSpec("sma_cross", "BTC/USDT:USDT", leverage=60))
        assert str(caught.value) == ("leverage 60 is above the maximum of 50x for "
                                     "BTC/USDT:USDT on bybit (bybit's market limits)")
        assert await service.runs() == []


CHILD = """
import asyncio, json, sys
from pathlib import Path
from engine.forward.engine import RunSpec
from engine.runtime import Runtime
from engine.settings import load_settings

async def main(rest, ws, folder, final):
    settings = load_settings(db_path=Path(folder) / "runs.db", data_dir=Path(folder) / "cache",
                             live_exchange="bybit", exchange_rest_url=rest,
                             exchange_ws_url=ws, log_level="WARNING")
    async with Runtime(settings) as rt:
        record = await rt.service.start_run(RunSpec("oi_divergence", "BTC/USDT:USDT",
                                                    timeframe="1m", leverage=3))
        run = rt.engine.runs[record.id]
        print("READY", flush=True)
        for _ in range(3000):
            if run.last_candle_ts == final:
                break
            await asyncio.sleep(0.01)
        print(json.dumps({"done": run.last_candle_ts == final,
                          "tickers": run.perp.book.messages,
                          "oi": run.market.base.open_interest[-1],
                          "modules": sorted(m for m in ("pandas", "pyarrow", "matplotlib")
                                            if m in sys.modules)}))

asyncio.run(main(*sys.argv[1:4], int(sys.argv[4])))
"""


async def test_a_live_perpetual_run_never_imports_pandas(tmp_path):
    from tests.forward_helpers import MINUTES
    from tests.standins.exchange import CandleSeries, ExchangeStandin

    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", start=420, count=300,
                                       cursor=250)
    async with ExchangeStandin([series]) as ex:
        final = int(series.ts[259])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, ex.rest_url, ex.ws_url("bybit", "linear"),
            str(tmp_path), str(final), cwd=REPO, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        assert line.strip() == b"READY", line
        await ex.wait_for_subscription("bybit", "tickers.BTCUSDT")
        await ex.replay("BTC/USDT", "1m", 10)
        out = json.loads((await asyncio.wait_for(proc.stdout.read(), timeout=60)).decode())
        assert await proc.wait() == 0
    assert out["done"] and out["tickers"] >= 10 and out["oi"] > 0
    assert out["modules"] == []
