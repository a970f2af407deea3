"""A forward run's perpetual inputs: open interest and funding known at each close, and the
funding due at each candle.

Where the values come from (docs/perpetuals.md, "Forward runs"):

* **live candles**: the ticker stream (``data.live.tickers.TickerBook``, on the run's shared
  connection): at a candle's close the state of the newest ticker message stamped at or before
  the close, unknown when that message is more than ``TICKER_MAX_AGE_MS`` older than the close
  (a silent stream); funding settlements as the stream announced them;
* **warm-up, backfilled and ticker-less candles**: REST (``data.perp_fetch``), aligned by the
  same rules as a backtest (``data.perp``): open interest sampled at or before the close, stale
  after two sampling periods; funding as last published, stale after two funding intervals;
* **a resumed run**: what it stored (``engine.store.perp_inputs``), so its history window is
  rebuilt with the values it had; REST only for candles it has no row for.

Every value a candle was given, and every settlement the run learnt, is stored with the candle
(``PerpWrite``), so a backtest over the same candles reproduces them. CVD needs no input: Bybit
klines carry no taker volume, so it is approximated from the candles, as in a backtest of them.
numpy only (the live process never imports pandas).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from data.live.tickers import TickerBook
from data.ohlcv import OHLCV, Candle
from data.perp import (
    FUNDING_MAX_AGE_INTERVALS,
    OI_MAX_AGE_SAMPLES,
    PerpInputs,
    PerpPoint,
    align_funding,
    align_open_interest,
    funding_interval,
    values_at_closes,
)
from data.perp_fetch import fetch_funding_range, fetch_open_interest_range, oi_period_for
from data.timeframes import timeframe_ms
from engine.perp.funding import due_between
from engine.store.perp_inputs import PerpWrite, read_points, read_settlements

#: A ticker message older than this at a close says nothing about the close (ms: 2 × the
#: finest open interest period of the exchanges' histories, 5 minutes).
TICKER_MAX_AGE_MS = 2 * 5 * 60_000


class LiveInputs:
    """Perpetual inputs of one forward run (module docstring).

    Args:
        exchange_id, symbol, timeframe: the run's (``symbol`` a perpetual).
        source: its REST source (an async ccxt exchange as ``source.exchange``).
        retry: ``call_with_retry`` options for the REST fetches.
    """

    def __init__(self, exchange_id: str, symbol: str, timeframe: str, source: Any,
                 retry: dict[str, Any] | None = None) -> None:
        self.exchange_id = exchange_id
        self.symbol = symbol
        self.timeframe = timeframe
        self.source = source
        self.retry = retry or {}
        self.step = timeframe_ms(timeframe)
        self.period = oi_period_for(timeframe)
        self.period_ms = timeframe_ms(self.period)
        #: the ticker stream's book (None: no stream; REST only)
        self.book: TickerBook | None = None
        #: settlements known to the run: time (ms UTC) → rate
        self.settlements: dict[int, float] = {}
        self.last_close: int | None = None
        self._oi: tuple[np.ndarray, np.ndarray] = (np.empty(0, np.int64), np.empty(0))
        self._interval: int | None = None
        self._write = self._new_write()

    # ---- history -----------------------------------------------------------------------------
    async def initial(self, history: OHLCV, store: Any, resumed: bool) -> PerpInputs:
        """The inputs of the run's history candles: what a resumed run stored, else (and for
        candles without a row) REST. New values are stored at once (``store.record_perp``).

        Raises:
            FetchError: REST failed after its retries.
        """
        n = len(history)
        if not n:
            return PerpInputs.unknown(0)
        first, end = int(history.timestamp[0]), int(history.timestamp[-1]) + self.step
        oi, rates = np.full(n, np.nan), np.full(n, np.nan)
        rows: dict[int, tuple[float, float]] = {}
        if resumed:
            rows = await read_points(store.db, self.exchange_id, self.symbol, self.timeframe,
                                     first, end)
            self.settlements.update(await read_settlements(
                store.db, self.exchange_id, self.symbol, first - self._max_funding_age(), end))
        missing = [i for i, t in enumerate(history.timestamp.tolist()) if t not in rows]
        if missing:
            lo = int(history.timestamp[missing[0]])
            await self.load_rest(lo, end)
            oi = align_open_interest(history.timestamp, self.timeframe, *self._oi,
                                     self.period_ms)
            settled = np.array(sorted(self.settlements), dtype=np.int64)
            rates = align_funding(history.timestamp, self.timeframe, settled,
                                  np.array([self.settlements[t] for t in settled.tolist()]),
                                  self._funding_interval())
        for i, t in enumerate(history.timestamp.tolist()):
            if t in rows:
                oi[i], rates[i] = rows[t]
        self._write.points += [(int(history.timestamp[i]), float(oi[i]), float(rates[i]))
                               for i in missing]
        self.last_close = end
        await store.record_perp(self.take_write())
        return PerpInputs(oi, rates, np.full(n, np.nan))

    async def load_rest(self, start: int, until: int) -> None:
        """Fetch open interest and funding settlements for candles opening in
        ``[start, until)`` over REST (what a backfill or a ticker-less candle needs).

        Raises:
            FetchError: after the retries.
        """
        exchange = self.source.exchange
        lo = start + self.step - OI_MAX_AGE_SAMPLES * self.period_ms
        ts, values = await fetch_open_interest_range(exchange, self.symbol, self.period, lo,
                                                     until + self.step + 1, retry=self.retry)
        self._oi = (ts, values)
        times, rates = await fetch_funding_range(
            exchange, self.symbol, start - self._max_funding_age(), until + self.step + 1,
            retry=self.retry)
        fresh = {t: r for t, r in zip(times.tolist(), rates.tolist(), strict=True)
                 if self.settlements.get(t) != r}
        self._learn(fresh)

    # ---- each closed candle ------------------------------------------------------------------
    def needs_rest(self, candle: Candle) -> bool:
        """True when the ticker stream says nothing about ``candle``'s close and the REST
        samples loaded do not reach it (the caller then awaits ``load_rest``)."""
        close = candle.timestamp + self.step
        if self._ticker_state(close) is not None:
            return False
        ts = self._oi[0]
        return not len(ts) or int(ts[-1]) < close - OI_MAX_AGE_SAMPLES * self.period_ms

    def point(self, candle: Candle) -> tuple[PerpPoint, float | None]:
        """(the inputs known at ``candle``'s close, the funding rate due in the candle —
        the sum of the settlements after the previous close up to this one — or None); the
        values are queued for storing with the candle."""
        close = candle.timestamp + self.step
        if self.book is not None:  # settled by the close, even when the book has moved past
            # it (a run behind its feed): a settlement learnt only after its candle would
            # never be paid
            self._learn({t: r for t, r in self.book.settlements_until(close).items()
                         if t not in self.settlements})
        state = self._ticker_state(close)
        if state is not None:
            oi = state.open_interest
        else:
            ts, values = self._oi
            oi = float(values_at_closes(np.array([close]), ts, values,
                                        OI_MAX_AGE_SAMPLES * self.period_ms)[0]) \
                if len(ts) else math.nan
        rate = self._rate_at(close)
        after = self.last_close if self.last_close is not None else close - self.step
        due = due_between(self.settlements, after, close)
        self.last_close = close
        self._write.points.append((candle.timestamp, oi, rate))
        return PerpPoint(oi, rate), due

    def take_write(self) -> PerpWrite:
        """What to store since the last call (then forgotten here)."""
        write, self._write = self._write, self._new_write()
        return write

    # ---- internals -------------------------------------------------------------------------
    def _new_write(self) -> PerpWrite:
        return PerpWrite(self.exchange_id, self.symbol, self.timeframe)

    def _ticker_state(self, close: int) -> Any:
        """The ticker state at ``close`` when it is fresh and knows the open interest."""
        if self.book is None:
            return None
        state = self.book.at(close)
        if state is None or close - state.ts > TICKER_MAX_AGE_MS \
                or state.open_interest != state.open_interest:
            return None
        return state

    def _learn(self, settled: dict[int, float]) -> None:
        """Add settlements (to the run's and to what is stored)."""
        if not settled:
            return
        self.settlements.update(settled)
        self._write.settlements += list(settled.items())
        self._interval = None
        if len(self.settlements) > 256:  # a month of 8-hour funding is plenty for the rules
            for t in sorted(self.settlements)[:-256]:
                del self.settlements[t]

    def _funding_interval(self) -> int:
        if self._interval is None:
            self._interval = funding_interval(np.array(sorted(self.settlements),
                                                       dtype=np.int64))
        return self._interval

    def _max_funding_age(self) -> int:
        return FUNDING_MAX_AGE_INTERVALS * self._funding_interval()

    def _rate_at(self, close: int) -> float:
        """The rate last published at ``close``: the newest settlement at or before it, unless
        more than two funding intervals old (``data.perp`` rules)."""
        newest = max((t for t in self.settlements if t <= close), default=None)
        if newest is None or close - newest > self._max_funding_age():
            return math.nan
        return self.settlements[newest]
