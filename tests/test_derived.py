"""CVD proxy and open interest alignment (no look-ahead)."""

from __future__ import annotations

import numpy as np

from data.derived import add_cvd, align_open_interest, cvd
from tests.helpers import HOUR, MIN, T0, candles


def test_cvd_signs_volume_by_candle_direction():
    c = candles([(10, 11, 9, 11), (11, 12, 10, 10), (10, 10, 10, 10), (10, 12, 10, 12)])
    c.volume[:] = [2.0, 3.0, 5.0, 7.0]
    assert cvd(c.open, c.close, c.volume).tolist() == [2.0, -1.0, -1.0, 6.0]
    assert add_cvd(c.to_frame())["cvd"].tolist() == [2.0, -1.0, -1.0, 6.0]


def test_open_interest_known_at_candle_close_only():
    candle_ts = np.array([T0 + h * HOUR for h in range(4)])
    # observations every 30 minutes, value = minutes since T0
    oi_ts = np.array([T0 + m * MIN for m in range(0, 240, 30)])
    aligned = align_open_interest(candle_ts, "1h", oi_ts, (oi_ts - T0) / MIN)
    # the 00:00 candle closes at 01:00; the newest observation before then is 00:30
    assert aligned.tolist() == [30.0, 90.0, 150.0, 210.0]


def test_open_interest_gaps_and_staleness_give_nan():
    candle_ts = np.array([T0 + h * HOUR for h in range(6)])
    oi_ts = np.array([T0 + 30 * MIN])
    aligned = align_open_interest(candle_ts, "1h", oi_ts, np.array([5.0]))
    assert aligned[0] == 5.0 and aligned[1] == 5.0
    assert np.isnan(aligned[2:]).all()  # older than two candles at those closes
    early = align_open_interest(candle_ts, "1h", np.array([T0 + 3 * HOUR]), np.array([1.0]))
    assert np.isnan(early[:3]).all() and early[3] == 1.0
