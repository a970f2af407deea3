"""Importing candle files into the cache."""

from __future__ import annotations

import pandas as pd
import pytest

from data.cache import read_candles
from data.frames import CandleDataError
from data.importer import import_file, read_candle_file
from tests.helpers import MIN, SAMPLE_DATA, T0

BINANCE_ROWS = [
    # open_time (µs, as Binance spot files since 2025), o, h, l, c, v, close_time, …
    f"{(T0 + i * MIN) * 1000},{100 + i}.0,{101 + i}.5,{99 + i}.5,{100 + i}.25,{1.5 + i},"
    f"{(T0 + (i + 1) * MIN) * 1000 - 1},150.0,10,0.7,70.0,0"
    for i in range(5)
]


def test_binance_public_kline_csv_with_microseconds(tmp_path):
    src = tmp_path / "BTCUSDT-1m-2024-01-01.csv"
    src.write_text("\n".join(BINANCE_ROWS) + "\n")
    rows, target = import_file(src, tmp_path / "cache", "binance", "BTC/USDT", "1m")
    assert rows == 5 and target.name == "binance_BTC-USDT_1m.parquet"
    stored = read_candles(target)
    assert stored["timestamp"].tolist() == [T0 + i * MIN for i in range(5)]
    assert stored["close"].tolist() == [100.25, 101.25, 102.25, 103.25, 104.25]
    assert stored["volume"].tolist() == [1.5, 2.5, 3.5, 4.5, 5.5]


def test_csv_with_header_and_date_strings(tmp_path):
    src = tmp_path / "eth.csv"
    src.write_text("Date,Open,High,Low,Close,Volume\n"
                   "2024-01-01 00:05:00,10,11,9,10.5,3\n"
                   "2024-01-01 00:00:00,9,10,8,9.5,2\n")
    frame = read_candle_file(src)
    assert frame["timestamp"].tolist() == [T0, T0 + 5 * MIN]  # sorted
    assert frame["open"].tolist() == [9.0, 10.0]


def test_parquet_sample_round_trip(tmp_path):
    rows, target = import_file(SAMPLE_DATA / "binance_ETH-USDT_5m.parquet", tmp_path, "binance",
                               "ETH/USDT", "5m")
    assert rows == 52_416
    original = pd.read_parquet(SAMPLE_DATA / "binance_ETH-USDT_5m.parquet")
    assert read_candles(target).equals(original)


def test_wrong_timeframe_is_refused_and_nothing_written(tmp_path):
    src = tmp_path / "k.csv"
    src.write_text("\n".join(BINANCE_ROWS) + "\n")
    with pytest.raises(CandleDataError, match="not on the 5m grid"):
        import_file(src, tmp_path / "cache", "binance", "BTC/USDT", "5m")
    assert not (tmp_path / "cache").exists()


def test_unknown_layout_says_what_is_expected(tmp_path):
    src = tmp_path / "x.csv"
    src.write_text("a,b\n1,2\n")
    with pytest.raises(CandleDataError, match="expected timestamp, open, high"):
        read_candle_file(src)


def test_non_numeric_values_are_reported(tmp_path):
    src = tmp_path / "x.csv"
    src.write_text("timestamp,open,high,low,close,volume\n"
                   f"{T0},1,2,0.5,oops,1\n")
    with pytest.raises(CandleDataError, match="non-numeric"):
        read_candle_file(src)
