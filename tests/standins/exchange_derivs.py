"""Derivatives half of the exchange stand-in's REST server: open interest and funding history.

Endpoints, in the exchanges' own formats (and what ccxt's parsers read from them):

* Bybit v5 ``GET /v5/market/open-interest`` (https://bybit-exchange.github.io/docs/v5/market/
  open-interest): ``category`` (linear|inverse), ``symbol``, ``intervalTime``
  (5min 15min 30min 1h 4h 1d), ``startTime``/``endTime`` (ms, inclusive), ``limit`` 1–200
  (default 50). ``result.list`` NEWEST FIRST, ``{"openInterest": "<base units>", "timestamp":
  "<ms>"}``, ``nextPageCursor``; ccxt reads ``openInterest``/``timestamp``.
* Bybit v5 ``GET /v5/market/funding/history`` (…/v5/market/history-fund-rate): ``category``,
  ``symbol``, ``startTime``/``endTime`` (startTime alone is an error), ``limit`` 1–200 (default
  200). ``result.list`` NEWEST FIRST, ``{"symbol", "fundingRate", "fundingRateTimestamp"}``.
* Binance USDⓈ-M ``GET /futures/data/openInterestHist``: ``symbol``, ``period``
  (5m 15m 30m 1h 2h 4h 6h 12h 1d), ``limit`` ≤ 500 (default 30), ``startTime``/``endTime``.
  A list oldest first of ``{"symbol", "sumOpenInterest", "sumOpenInterestValue",
  "timestamp"}``; ccxt reads ``sumOpenInterest`` as the amount (base units).
* Binance USDⓈ-M ``GET /fapi/v1/fundingRate``: ``symbol``, ``startTime``/``endTime``,
  ``limit`` ≤ 1000 (default 100). A list oldest first of ``{"symbol", "fundingTime",
  "fundingRate", "markPrice"}``.

Values: set them per symbol with ``set_open_interest`` / ``set_funding``; otherwise a
deterministic synthetic history is made from the symbol's finest candle series (open interest
every 5 minutes, a random walk seeded by the market id; funding every 8 hours, following the
price trend). Only what happened by the stand-in's clock is served (sample time <= now).
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, Mapping

import numpy as np
from aiohttp import web

from data.ohlcv import OHLCV
from data.perp import PerpInputs
from tests.standins.exchange_ws import CandleSeries, fmt, market_id

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MINUTE = 60_000
OI_STEP = 5 * MINUTE  # the synthetic open interest is sampled every 5 minutes
FUNDING_STEP = 8 * 60 * MINUTE
BYBIT_INTERVALS = {"5min": 5, "15min": 15, "30min": 30, "1h": 60, "4h": 240, "1d": 1440}
BINANCE_PERIODS = {"5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240, "6h": 360,
                   "12h": 720, "1d": 1440}


class DerivStore:
    """Open interest and funding histories per market id, and their REST handlers.

    Args:
        series: the stand-in's candle series (for synthetic values and prices).
        clock_ms: the stand-in's clock (ms): nothing later is served.
    """

    def __init__(self, series: Mapping[tuple[str, str], CandleSeries],
                 clock_ms: Callable[[], int]) -> None:
        self.series = series
        self.clock_ms = clock_ms
        self.open_interest: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.funding: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def routes(self) -> dict[str, Handler]:
        """Path → handler, for ``RestServer``."""
        return {"/v5/market/open-interest": self.bybit_open_interest,
                "/v5/market/funding/history": self.bybit_funding,
                "/futures/data/openInterestHist": self.binance_open_interest,
                "/fapi/v1/fundingRate": self.binance_funding}

    # -- data ------------------------------------------------------------------------------------

    def set_open_interest(self, symbol: str, ts: np.ndarray, values: np.ndarray) -> None:
        """Serve these samples (ms UTC, on the 5-minute grid; base units) for ``symbol``."""
        self.open_interest[market_id(symbol)] = (np.asarray(ts, dtype=np.int64),
                                                 np.asarray(values, dtype=np.float64))

    def set_funding(self, symbol: str, ts: np.ndarray, rates: np.ndarray) -> None:
        """Serve these settlements (ms UTC; fractions) for ``symbol``."""
        self.funding[market_id(symbol)] = (np.asarray(ts, dtype=np.int64),
                                           np.asarray(rates, dtype=np.float64))

    def _candles(self, mid: str) -> CandleSeries | None:
        found = [s for (sym, _), s in self.series.items() if market_id(sym) == mid]
        return min(found, key=lambda s: s.duration_ms) if found else None

    def oi_of(self, mid: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The open interest of market id ``mid`` (synthesized on first use), or None."""
        if mid not in self.open_interest:
            s = self._candles(mid)
            if s is None or not len(s):
                return None
            lo = int(s.ts[0]) - int(s.ts[0]) % OI_STEP
            ts = np.arange(lo, int(s.ts[-1]) + s.duration_ms + 1, OI_STEP, dtype=np.int64)
            rng = np.random.default_rng(zlib.crc32(mid.encode()))
            self.open_interest[mid] = (ts, 50_000.0 * np.exp(np.cumsum(
                rng.normal(0.0, 0.003, len(ts)))))
        return self.open_interest[mid]

    def funding_of(self, mid: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The funding settlements of ``mid`` (synthesized on first use), or None."""
        if mid not in self.funding:
            s = self._candles(mid)
            if s is None or not len(s):
                return None
            lo = int(s.ts[0]) - int(s.ts[0]) % FUNDING_STEP + FUNDING_STEP
            ts = np.arange(lo, int(s.ts[-1]) + s.duration_ms + 1, FUNDING_STEP, dtype=np.int64)
            now = self.price_at(s, ts)
            before = self.price_at(s, ts - FUNDING_STEP)
            rng = np.random.default_rng(zlib.crc32(mid.encode()) + 1)
            rates = 0.0001 + 0.0005 * np.tanh(20.0 * (now / before - 1.0)) \
                + rng.normal(0.0, 0.00005, len(ts))
            self.funding[mid] = (ts, np.round(rates, 8))
        return self.funding[mid]

    @staticmethod
    def price_at(s: CandleSeries, ts: np.ndarray) -> np.ndarray:
        """Close of the newest candle closed at or before each time (the first candle's open
        before it)."""
        idx = np.searchsorted(s.ts + s.duration_ms, ts, side="right") - 1
        return np.where(idx >= 0, s.close[np.clip(idx, 0, None)], s.open[0])

    def _select(self, ts: np.ndarray, step_ms: int, start: int | None, end: int | None
                ) -> np.ndarray:
        """Indices of samples on the ``step_ms`` grid in ``[start, end]`` served by now."""
        keep = (ts % step_ms == 0) & (ts <= self.clock_ms())
        if start is not None:
            keep &= ts >= start
        if end is not None:
            keep &= ts <= end
        return np.flatnonzero(keep)

    # -- Bybit -----------------------------------------------------------------------------------

    def _bybit(self, result: object, code: int = 0, msg: str = "OK") -> web.Response:
        return web.json_response({"retCode": code, "retMsg": msg, "result": result,
                                  "retExtInfo": {}, "time": self.clock_ms()})

    async def bybit_open_interest(self, request: web.Request) -> web.Response:
        """Open interest of a linear/inverse symbol at ``intervalTime``, newest first."""
        q = request.query
        if q.get("category") not in ("linear", "inverse"):
            return self._bybit({}, 10001, "Illegal category")
        minutes = BYBIT_INTERVALS.get(q.get("intervalTime", ""))
        if minutes is None:
            return self._bybit({}, 10001, "Illegal intervalTime")
        data = self.oi_of(q.get("symbol", ""))
        if data is None:
            return self._bybit({}, 10001, "Symbol Is Invalid")
        try:
            limit = min(max(int(q.get("limit", 50)), 1), 200)
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            return self._bybit({}, 10001, "params error")
        ts, values = data
        idx = self._select(ts, minutes * MINUTE, start, end)[::-1][:limit]
        rows = [{"openInterest": fmt(values[i]), "timestamp": str(int(ts[i]))} for i in idx]
        return self._bybit({"symbol": q["symbol"], "category": q["category"], "list": rows,
                            "nextPageCursor": ""})

    async def bybit_funding(self, request: web.Request) -> web.Response:
        """Funding settlements of a linear/inverse symbol, newest first."""
        q = request.query
        if q.get("category") not in ("linear", "inverse"):
            return self._bybit({}, 10001, "Illegal category")
        if "startTime" in q and "endTime" not in q:
            return self._bybit({}, 10001, "endTime is required when startTime is given")
        data = self.funding_of(q.get("symbol", ""))
        if data is None:
            return self._bybit({}, 10001, "Symbol Is Invalid")
        try:
            limit = min(max(int(q.get("limit", 200)), 1), 200)
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            return self._bybit({}, 10001, "params error")
        ts, rates = data
        idx = self._select(ts, 1, start, end)[::-1][:limit]
        rows = [{"symbol": q["symbol"], "fundingRate": fmt(rates[i]),
                 "fundingRateTimestamp": str(int(ts[i]))} for i in idx]
        return self._bybit({"category": q["category"], "list": rows})

    # -- Binance ---------------------------------------------------------------------------------

    @staticmethod
    def _binance_error(code: int, msg: str) -> web.Response:
        return web.json_response({"code": code, "msg": msg}, status=400)

    @staticmethod
    def _window(idx: np.ndarray, limit: int, start: int | None) -> np.ndarray:
        """From ``start``: the earliest ``limit``; without it: the latest ``limit``."""
        return idx[:limit] if start is not None else idx[-limit:]

    async def binance_open_interest(self, request: web.Request) -> web.Response:
        """Open interest statistics of a USDⓈ-M symbol at ``period``, oldest first."""
        q = request.query
        minutes = BINANCE_PERIODS.get(q.get("period", ""))
        if minutes is None:
            return self._binance_error(-1130, "Data sent for parameter 'period' is not valid.")
        data = self.oi_of(q.get("symbol", ""))
        if data is None:
            return self._binance_error(-1121, "Invalid symbol.")
        try:
            limit = min(max(int(q.get("limit", 30)), 1), 500)
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            return self._binance_error(-1100, "Illegal characters found in a parameter.")
        ts, values = data
        idx = self._window(self._select(ts, minutes * MINUTE, start, end), limit, start)
        prices = self.price_at(self._candles(q["symbol"]), ts[idx]) if len(idx) else []
        rows = [{"symbol": q["symbol"], "sumOpenInterest": fmt(values[i]),
                 "sumOpenInterestValue": fmt(values[i] * p), "timestamp": int(ts[i])}
                for i, p in zip(idx, prices, strict=True)]
        return web.json_response(rows)

    async def binance_funding(self, request: web.Request) -> web.Response:
        """Funding rate history of a USDⓈ-M symbol, oldest first."""
        q = request.query
        data = self.funding_of(q.get("symbol", ""))
        if data is None:
            return self._binance_error(-1121, "Invalid symbol.")
        try:
            limit = min(max(int(q.get("limit", 100)), 1), 1000)
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            return self._binance_error(-1100, "Illegal characters found in a parameter.")
        ts, rates = data
        idx = self._window(self._select(ts, 1, start, end), limit, start)
        prices = self.price_at(self._candles(q["symbol"]), ts[idx]) if len(idx) else []
        rows = [{"symbol": q["symbol"], "fundingTime": int(ts[i]),
                 "fundingRate": f"{rates[i]:.8f}", "markPrice": fmt(p)}
                for i, p in zip(idx, prices, strict=True)]
        return web.json_response(rows)


def synthetic_perp(candles: OHLCV, timeframe: str, symbol: str = "BTC/USDT") -> PerpInputs:
    """The stand-in's synthetic open interest and funding for ``candles``, aligned to their
    closes as a backtest sees them (no taker volume: CVD is approximated)."""
    from data.perp import align_funding, align_open_interest

    series = CandleSeries.from_columns(symbol, timeframe, {
        "timestamp": candles.timestamp, "open": candles.open, "high": candles.high,
        "low": candles.low, "close": candles.close, "volume": candles.volume}, cursor=0)
    store = DerivStore({(symbol, timeframe): series}, lambda: 2**62)
    oi_ts, oi = store.oi_of(market_id(symbol))
    funding_ts, rates = store.funding_of(market_id(symbol))
    return PerpInputs(align_open_interest(candles.timestamp, timeframe, oi_ts, oi, OI_STEP),
                      align_funding(candles.timestamp, timeframe, funding_ts, rates),
                      np.full(len(candles), np.nan))
