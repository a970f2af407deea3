"""REST half of the exchange stand-in: the public endpoints ccxt's load_markets/fetch_ohlcv use.

Binance spot (https://developers.binance.com/docs/binance-spot-api-docs/rest-api):
``/api/v3/exchangeInfo``, ``/api/v3/klines``, ``/api/v3/time``, ``/api/v3/ping``; USDⓈ-M
(binanceusdm) ``/fapi/v1/exchangeInfo``, ``/fapi/v1/klines``, ``/fapi/v1/time``.
Bybit v5 (https://bybit-exchange.github.io/docs/v5/market/kline):
``/v5/market/instruments-info``, ``/v5/market/kline``, ``/v5/market/time``.
Open interest and funding history of both: ``tests.standins.exchange_derivs`` (``derivs``).
Anything else answers 404 and is recorded in ``RestServer.unknown``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.standins.exchange_derivs import DerivStore
from tests.standins.exchange_ws import TIMEFRAMES, CandleSeries, fmt, market_id

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RestRequest:
    """One HTTP request received: venue ("binance"/"bybit"/""), path, query, answered status."""

    venue: str
    path: str
    query: dict[str, str]
    status: int


def venue_of(path: str) -> str:
    """Venue that a request path belongs to."""
    if path.startswith(("/api/", "/fapi/", "/sapi/", "/dapi/", "/eapi/", "/futures/")):
        return "binance"
    return "bybit" if path.startswith("/v5/") else ""


class RestServer:
    """aiohttp server on 127.0.0.1 serving closed candles of the shared series."""

    def __init__(self, series: Mapping[tuple[str, str], CandleSeries],
                 clock_ms: Callable[[], int]) -> None:
        self.series = series
        self.clock_ms = clock_ms
        self.requests: list[RestRequest] = []
        self.unknown: list[str] = []
        self.failures: deque[tuple[int, str | None]] = deque()  # (status, venue or None)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._routes: dict[str, Handler] = {
            "/api/v3/exchangeInfo": self.binance_exchange_info,
            "/fapi/v1/exchangeInfo": self.binance_exchange_info,
            "/api/v3/klines": self.binance_klines,
            "/fapi/v1/klines": self.binance_klines,
            "/api/v3/time": self.binance_time,
            "/fapi/v1/time": self.binance_time,
            "/api/v3/ping": self.binance_ping,
            "/fapi/v1/ping": self.binance_ping,
            "/v5/market/instruments-info": self.bybit_instruments,
            "/v5/market/kline": self.bybit_kline,
            "/v5/market/time": self.bybit_time,
        }
        self.derivs = DerivStore(series, clock_ms)  # open interest and funding history
        self._routes.update(self.derivs.routes())

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        venue = venue_of(request.path)
        failure = next((f for f in self.failures if f[1] in (None, venue)), None)
        if failure is not None:
            self.failures.remove(failure)
            response = self._failure(venue, failure[0])
        else:
            response = await handler(request)
        self.requests.append(RestRequest(venue, request.path, dict(request.query),
                                         response.status))
        return response

    def _failure(self, venue: str, status: int) -> web.Response:
        if status == 429 and venue == "bybit":  # Bybit signals its API limit inside HTTP 200
            return web.json_response(
                {"retCode": 10006, "retMsg": "Too many visits!", "result": {},
                 "retExtInfo": {}, "time": self.clock_ms()},
                headers={"X-Bapi-Limit-Status": "0", "X-Bapi-Limit": "600"})
        if status == 429:
            return web.json_response(
                {"code": -1003, "msg": "Too many requests; current limit of IP(127.0.0.1) is "
                 "6000 requests per minute. Please use WebSocket Streams for live updates."},
                status=429, headers={"Retry-After": "1"})
        reason = {500: "Internal Server Error", 502: "Bad Gateway",
                  503: "Service Unavailable", 504: "Gateway Time-out"}.get(status, "Error")
        return web.Response(status=status, content_type="text/html",
                            text=f"<html><body><h1>{status} {reason}</h1></body></html>")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        handler = self._routes.get(request.path)
        if handler is None or request.method != "GET":
            self.unknown.append(f"{request.method} {request.path_qs}")
            return web.json_response({"code": -1, "msg": "stand-in: unknown route"}, status=404)
        return await handler(request)

    def _find(self, symbol_id: str, timeframe: str) -> CandleSeries | None:
        for (sym, tf), s in self.series.items():
            if market_id(sym) == symbol_id and tf == timeframe:
                return s
        return None

    def _symbols(self) -> list[tuple[str, str, str]]:
        """(id, base, quote) of every served symbol."""
        out = {market_id(s): tuple(s.split(":")[0].split("/")) for s, _ in self.series}
        return [(i, base, quote) for i, (base, quote) in sorted(out.items())]

    # -- Binance ---------------------------------------------------------------------------------

    @staticmethod
    def _binance_error(code: int, msg: str) -> web.Response:
        return web.json_response({"code": code, "msg": msg}, status=400)

    async def binance_time(self, request: web.Request) -> web.Response:
        """``{"serverTime": ms}`` (the stand-in's clock)."""
        return web.json_response({"serverTime": self.clock_ms()})

    async def binance_ping(self, request: web.Request) -> web.Response:
        """``{}``."""
        return web.json_response({})

    async def binance_exchange_info(self, request: web.Request) -> web.Response:
        """Minimal exchangeInfo (spot or USDⓈ-M by path) that ccxt's parser accepts."""
        futures = request.path.startswith("/fapi/")
        symbols = []
        for sym, base, quote in self._symbols():
            filters = [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000",
                 "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000",
                 "stepSize": "0.00001"},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": "100",
                 "stepSize": "0"},
                {"filterType": "MIN_NOTIONAL" if futures else "NOTIONAL",
                 "notional": "5", "minNotional": "5"},
            ]
            entry: dict[str, Any] = {
                "symbol": sym, "status": "TRADING", "baseAsset": base, "quoteAsset": quote,
                "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "MARKET", "STOP_LOSS_LIMIT"], "filters": filters,
            }
            if futures:
                entry.update({"pair": sym, "contractType": "PERPETUAL", "marginAsset": quote,
                              "deliveryDate": 4133404800000, "onboardDate": 1569398400000,
                              "pricePrecision": 2, "quantityPrecision": 3,
                              "underlyingType": "COIN", "timeInForce": ["GTC", "IOC"]})
            else:
                entry.update({"baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
                              "icebergAllowed": True, "ocoAllowed": True,
                              "quoteOrderQtyMarketAllowed": True, "isSpotTradingAllowed": True,
                              "isMarginTradingAllowed": False, "permissions": [],
                              "permissionSets": [["SPOT"]]})
            symbols.append(entry)
        return web.json_response({
            "timezone": "UTC", "serverTime": self.clock_ms(), "exchangeFilters": [],
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                            "intervalNum": 1, "limit": 6000}],
            "symbols": symbols})

    async def binance_klines(self, request: web.Request) -> web.Response:
        """Closed klines, oldest first; startTime/endTime on open time, limit 500 (max 1000)."""
        q = request.query
        timeframe = next((tf for tf, v in TIMEFRAMES.items() if v[2] == q.get("interval")), None)
        if timeframe is None:
            return self._binance_error(-1120, "Invalid interval.")
        series = self._find(q.get("symbol", ""), timeframe)
        if series is None:
            return self._binance_error(-1121, "Invalid symbol.")
        try:
            limit = min(max(int(q.get("limit", 500)), 1), 1000)
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            return self._binance_error(-1100, "Illegal characters found in a parameter.")
        lo, hi = series.closed_slice(start, end, limit)
        dur = series.duration_ms
        rows = []
        for i in range(lo, hi):
            c = series.candle(i)
            quote_volume = c.volume * (c.open + c.high + c.low + c.close) / 4
            rows.append([c.ts, fmt(c.open), fmt(c.high), fmt(c.low), fmt(c.close), fmt(c.volume),
                         c.ts + dur - 1, fmt(quote_volume), 100, fmt(c.volume / 2),
                         fmt(quote_volume / 2), "0"])
        return web.json_response(rows)

    # -- Bybit -----------------------------------------------------------------------------------

    def _bybit(self, result: Any, code: int = 0, msg: str = "OK") -> web.Response:
        return web.json_response({"retCode": code, "retMsg": msg, "result": result,
                                  "retExtInfo": {}, "time": self.clock_ms()})

    async def bybit_time(self, request: web.Request) -> web.Response:
        """Server time in seconds and nanoseconds (the stand-in's clock)."""
        ms = self.clock_ms()
        return self._bybit({"timeSecond": str(ms // 1000), "timeNano": str(ms * 1_000_000)})

    async def bybit_instruments(self, request: web.Request) -> web.Response:
        """Instruments of category spot or linear (empty for status=PreLaunch and others)."""
        category = request.query.get("category", "linear")
        items: list[dict[str, Any]] = []
        status = request.query.get("status", "Trading")
        for sym, base, quote in self._symbols() if status == "Trading" else []:
            if category == "spot":
                items.append({
                    "symbol": sym, "baseCoin": base, "quoteCoin": quote, "innovation": "0",
                    "status": "Trading", "marginTrading": "utaOnly",
                    "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.0000001",
                                      "minOrderQty": "0.000048", "maxOrderQty": "71.73956243",
                                      "minOrderAmt": "1", "maxOrderAmt": "2000000"},
                    "priceFilter": {"tickSize": "0.01"}})
            elif category == "linear":
                items.append({
                    "symbol": sym, "contractType": "LinearPerpetual", "status": "Trading",
                    "baseCoin": base, "quoteCoin": quote, "settleCoin": quote,
                    "launchTime": "1585526400000", "deliveryTime": "0", "deliveryFeeRate": "",
                    "priceScale": "2", "fundingInterval": 480, "copyTrading": "both",
                    "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00",
                                       "leverageStep": "0.01"},
                    "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80",
                                    "tickSize": "0.10"},
                    "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001",
                                      "qtyStep": "0.001", "postOnlyMaxOrderQty": "1190.000",
                                      "maxMktOrderQty": "500.000", "minNotionalValue": "5"},
                    "unifiedMarginTrade": True, "isPreListing": False, "preListingInfo": None})
        return self._bybit({"category": category, "list": items, "nextPageCursor": ""})

    async def bybit_kline(self, request: web.Request) -> web.Response:
        """Closed klines NEWEST FIRST, each [start, o, h, l, c, volume, turnover] as strings.

        ``start`` selects the earliest ``limit`` candles from the one containing ``start``;
        without it, the latest ``limit`` up to ``end``. limit default 200, max 1000.
        """
        q = request.query
        category = q.get("category", "linear")
        timeframe = next((tf for tf, v in TIMEFRAMES.items() if v[1] == q.get("interval")), None)
        if timeframe is None:
            return self._bybit({}, 10001, "Invalid period!")
        series = self._find(q.get("symbol", ""), timeframe)
        if series is None or category not in ("spot", "linear"):
            return self._bybit({}, 10001, "Not supported symbols")
        try:
            limit = min(max(int(q.get("limit", 200)), 1), 1000)
            start = int(q["start"]) if "start" in q else None
            end = int(q["end"]) if "end" in q else None
        except ValueError:
            return self._bybit({}, 10001, "params error")
        lo, hi = series.closed_slice(start, end, limit, containing_start=True)
        rows = []
        for i in range(hi - 1, lo - 1, -1):
            c = series.candle(i)
            turnover = c.volume * (c.open + c.high + c.low + c.close) / 4
            rows.append([str(c.ts), fmt(c.open), fmt(c.high), fmt(c.low), fmt(c.close),
                         fmt(c.volume), fmt(turnover)])
        return self._bybit({"symbol": q["symbol"], "category": category, "list": rows})

