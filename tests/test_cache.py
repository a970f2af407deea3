"""Parquet cache: naming, merge, dedupe, sort, atomic writes, listing and gaps."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from data import cache
from data.cache import (
    cache_path,
    list_cache,
    merge_candles,
    read_candles,
    split_symbol,
    write_candles,
)
from data.frames import CandleDataError
from data.gaps import find_gaps, missing_spans
from data.symbols import SymbolError
from tests.helpers import HOUR, T0, candles


def frame(rows, start=T0):
    return candles(rows, start=start).to_frame()


def test_cache_path_layout(tmp_path):
    assert cache_path(tmp_path, "binance", "BTC/USDT", "1m").name == "binance_BTC-USDT_1m.parquet"
    assert cache_path(tmp_path, "bybit", "fil/usdt:USDT", "1h").name == \
        "bybit_FIL-USDT-USDT_1h.parquet"  # a perpetual: its own file, apart from spot
    with pytest.raises(SymbolError, match="BASE/QUOTE"):
        split_symbol("BTCUSDT")


def test_merge_dedupes_sorts_and_new_values_win(tmp_path):
    path = cache_path(tmp_path, "binance", "BTC/USDT", "1h")
    write_candles(path, frame([(1, 2, 0.5, 1.5)] * 3, start=T0 + 2 * HOUR))  # hours 2,3,4
    merged = merge_candles(path, frame([(5, 6, 4, 5.5)] * 4))  # hours 0..3, overlapping 2,3
    assert merged["timestamp"].tolist() == [T0 + h * HOUR for h in range(5)]
    stored = read_candles(path)
    assert stored["open"].tolist() == [5, 5, 5, 5, 1]  # the newer rows replaced hours 2 and 3
    assert read_candles(path, T0 + HOUR, T0 + 3 * HOUR)["timestamp"].tolist() == \
        [T0 + HOUR, T0 + 2 * HOUR]


def test_write_is_atomic_when_the_writer_crashes(tmp_path, monkeypatch):
    path = cache_path(tmp_path, "binance", "BTC/USDT", "1h")
    write_candles(path, frame([(1, 2, 0.5, 1.5)] * 3))
    before = path.read_bytes()

    def crash(table, where, **kwargs):
        with open(where, "wb") as handle:
            handle.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(cache.pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        merge_candles(path, frame([(3, 4, 2, 3)] * 5, start=T0 + 10 * HOUR))
    assert path.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_invalid_candles_are_not_written(tmp_path):
    path = cache_path(tmp_path, "binance", "BTC/USDT", "1h")
    bad = frame([(1, 0.5, 0.4, 1.0)])  # high below open
    with pytest.raises(CandleDataError, match="inconsistent prices"):
        write_candles(path, bad)
    assert not path.exists()


def test_list_cache_reports_span_rows_and_gaps(tmp_path):
    path = cache_path(tmp_path, "binance", "ETH/USDT", "1h")
    data = frame([(1, 2, 0.5, 1.5)] * 6)
    write_candles(path, data.drop(index=[2, 3]))
    (tmp_path / "notes.parquet").write_bytes(b"")  # not a cache file name: ignored
    [entry] = list_cache(tmp_path)
    assert (entry.exchange, entry.symbol, entry.timeframe) == ("binance", "ETH/USDT", "1h")
    assert (entry.first, entry.last, entry.rows) == (T0, T0 + 5 * HOUR, 4)
    assert [(g.start, g.end, g.missing) for g in entry.gaps] == [
        (T0 + 2 * HOUR, T0 + 4 * HOUR, 2)]
    assert pq.read_table(path).schema.field("timestamp").type == "int64"


def test_missing_spans_only_names_what_is_absent():
    ts = pd.Series([T0 + h * HOUR for h in (2, 3, 6)]).to_numpy()
    assert missing_spans(ts, "1h", T0, T0 + 8 * HOUR) == [
        (T0, T0 + 2 * HOUR), (T0 + 4 * HOUR, T0 + 6 * HOUR), (T0 + 7 * HOUR, T0 + 8 * HOUR)]
    assert missing_spans(ts[:0], "1h", T0, T0 + HOUR) == [(T0, T0 + HOUR)]
    assert find_gaps(ts, "1h")[0].missing == 2
