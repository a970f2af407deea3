"""Historical fetch through ccxt: pagination, retry with backoff, only missing spans fetched."""

from __future__ import annotations

import ccxt.async_support as ccxt_async
import numpy as np
import pytest

from data.cache import cache_path, read_candles, write_candles
from data.cache_sync import update_cache
from data.exchanges import make_exchange
from data.history import FetchError, call_with_retry, fetch_ohlcv_range
from tests.helpers import MIN, SAMPLE_DATA, T0, candles
from tests.standins.exchange import CandleSeries, ExchangeStandin


class FakeExchange:
    """A stand-in ccxt exchange object: serves 1m candles in windows, fails on demand."""

    id = "fake"

    def __init__(self, n: int, limit_cap: int = 1000, failures: list[Exception] | None = None):
        self.data = candles([(100 + i, 101 + i, 99 + i, 100.5 + i) for i in range(n)], step=MIN)
        self.limit_cap = limit_cap
        self.failures = list(failures or [])
        self.calls: list[tuple[int, int, int]] = []

    async def fetch_ohlcv(self, symbol, timeframe, since=None, limit=None, params=None):
        until = (params or {}).get("until")
        self.calls.append((since, limit, until))
        if self.failures:
            raise self.failures.pop(0)
        window = self.data.between(since, until + 1 if until is not None else None)
        count = min(limit, self.limit_cap)
        return [[int(window.timestamp[i]), window.open[i], window.high[i], window.low[i],
                 window.close[i], window.volume[i]] for i in range(min(count, len(window)))]


async def no_sleep(_seconds: float) -> None:
    return None


async def test_pagination_covers_the_range_exactly():
    fake = FakeExchange(2500)
    candles = await fetch_ohlcv_range(fake, "BTC/USDT", "1m", T0, T0 + 2500 * MIN, limit=1000,
                                    now_ms=T0 + 10_000 * MIN)
    assert candles.timestamp.tolist() == [T0 + i * MIN for i in range(2500)]
    assert [c[0] for c in fake.calls] == [T0, T0 + 1000 * MIN, T0 + 2000 * MIN]
    assert all(c[2] == c[0] + 1000 * MIN - 1 or c[2] == T0 + 2500 * MIN - 1 for c in fake.calls)


async def test_short_pages_still_advance():
    fake = FakeExchange(1200, limit_cap=300)  # the exchange returns fewer than asked
    candles = await fetch_ohlcv_range(fake, "BTC/USDT", "1m", T0, T0 + 1200 * MIN,
                                    now_ms=T0 + 10_000 * MIN)
    assert len(candles) == 1200 and bool((np.diff(candles.timestamp) > 0).all())


async def test_candle_still_open_is_not_fetched():
    fake = FakeExchange(100)
    candles = await fetch_ohlcv_range(fake, "BTC/USDT", "1m", T0, T0 + 100 * MIN,
                                    now_ms=T0 + 50 * MIN + 30_000)
    assert candles.timestamp[-1] == T0 + 49 * MIN


async def test_retry_with_backoff_on_rate_limit_and_network_errors():
    fake = FakeExchange(10, failures=[ccxt_async.RateLimitExceeded("429"),
                                      ccxt_async.RequestTimeout("slow")])
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    candles = await fetch_ohlcv_range(fake, "BTC/USDT", "1m", T0, T0 + 10 * MIN,
                                    now_ms=T0 + 100 * MIN,
                                    retry={"sleep": record, "base_delay": 1.0})
    assert len(candles) == 10
    assert len(waits) == 2
    assert 1.0 <= waits[0] <= 1.25 and 2.0 <= waits[1] <= 2.5  # exponential, with jitter


async def test_gives_up_after_max_retries_and_does_not_retry_other_errors():
    calls = 0

    async def always_down():
        nonlocal calls
        calls += 1
        raise ccxt_async.ExchangeNotAvailable("down")

    with pytest.raises(FetchError, match="gave up after 3 retries"):
        await call_with_retry(always_down, what="x", max_retries=3, sleep=no_sleep)
    assert calls == 4

    async def bad_symbol():
        raise ccxt_async.BadSymbol("no such market")

    with pytest.raises(FetchError, match="BadSymbol"):
        await call_with_retry(bad_symbol, what="x", sleep=no_sleep)


async def test_update_cache_fetches_only_missing_spans(tmp_path):
    fake = FakeExchange(300)
    path = cache_path(tmp_path, "fake", "BTC/USDT", "1m")
    write_candles(path, fake.data.between(T0 + 100 * MIN, T0 + 200 * MIN).to_frame())
    fetched, _ = await update_cache(fake, tmp_path, "fake", "BTC/USDT", "1m", T0,
                                    T0 + 300 * MIN, now_ms=T0 + 1000 * MIN)
    assert fetched == 200
    assert sorted(c[0] for c in fake.calls) == [T0, T0 + 200 * MIN]
    stored = read_candles(path)
    assert stored["timestamp"].tolist() == [T0 + i * MIN for i in range(300)]


@pytest.mark.parametrize("exchange_id", ["binance", "bybit"])
async def test_real_ccxt_against_local_rest_server(tmp_path, exchange_id):
    series = CandleSeries.from_parquet(SAMPLE_DATA / "binance_BTC-USDT_1m.parquet",
                                       "BTC/USDT", "1m", count=2600, cursor=2600)
    async with ExchangeStandin([series]) as ex:
        ex.fail_next_rest(1, status=429)  # one rate-limit answer: must be retried
        client = make_exchange(exchange_id, rest_url=ex.rest_url)
        try:
            start = int(series.ts[0])
            fetched, path = await update_cache(
                client, tmp_path, exchange_id, "BTC/USDT", "1m", start, start + 2500 * MIN,
                retry={"sleep": no_sleep}, now_ms=ex.now_ms)
        finally:
            await client.close()
        requests = [(r.path, sorted(r.query.items())) for r in ex.rest_requests]
        klines = [r for r in ex.rest_requests if "kline" in r.path]
    assert fetched == 2500
    stored = read_candles(path)
    np.testing.assert_array_equal(stored["timestamp"], series.ts[:2500])
    np.testing.assert_array_equal(stored["close"], series.close[:2500])
    assert requests[0] == requests[1]  # the rate-limited first request was retried
    assert len(klines) == 3  # 2,500 candles in pages of 1,000
