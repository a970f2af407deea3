"""Timeframe arithmetic."""

from __future__ import annotations

import pytest

from data.timeframes import (
    TimeframeError,
    bucket_start,
    is_closed,
    is_multiple,
    lower_timeframes,
    periods_per_year,
    timeframe_ms,
)
from tests.helpers import T0

MONDAY = 1_704_067_200_000  # 2024-01-01 was a Monday


@pytest.mark.parametrize("tf,ms", [("1m", 60_000), ("5m", 300_000), ("15m", 900_000),
                                   ("1h", 3_600_000), ("4h", 14_400_000),
                                   ("1d", 86_400_000), ("1w", 604_800_000)])
def test_parse(tf, ms):
    assert timeframe_ms(tf) == ms


@pytest.mark.parametrize("bad", ["", "1", "h", "0m", "1y", "1H", "-5m", "1.5h"])
def test_bad_timeframe_names_the_valid_ones(bad):
    with pytest.raises(TimeframeError, match="1m, 5m, 15m"):
        timeframe_ms(bad)


def test_bucket_start_and_closed():
    t = T0 + 10 * 3_600_000 + 59 * 60_000 + 30_000  # 10:59:30
    assert bucket_start(t, "1h") == T0 + 10 * 3_600_000
    assert bucket_start(t, "4h") == T0 + 8 * 3_600_000
    assert bucket_start(t, "1d") == T0
    hour = T0 + 10 * 3_600_000
    assert not is_closed(hour, "1h", T0 + 11 * 3_600_000 - 1)
    assert is_closed(hour, "1h", T0 + 11 * 3_600_000)


def test_weeks_start_on_monday():
    wednesday = MONDAY + 2 * 86_400_000 + 5
    assert bucket_start(wednesday, "1w") == MONDAY
    assert bucket_start(MONDAY - 1, "1w") == MONDAY - 7 * 86_400_000


def test_multiples_and_drill_chain():
    assert is_multiple("4h", "1h") and is_multiple("1h", "15m") and is_multiple("1w", "1d")
    assert not is_multiple("1h", "4h") and not is_multiple("1h", "7m")
    assert lower_timeframes("4h") == ["1h", "15m", "5m", "1m"]
    assert lower_timeframes("1h") == ["15m", "5m", "1m"]
    assert lower_timeframes("5m") == ["1m"]
    assert lower_timeframes("1m") == []
    assert periods_per_year("1h") == 8760
