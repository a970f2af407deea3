"""ccxt is imported one exchange at a time (data/ccxt_lazy.py): a client for one exchange does
not load the other hundred modules, and ccxt's errors and exchange list still work."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import die_with_test

_PROBE = r"""
import json, sys
from data.exchanges import UnknownExchangeError, check_exchange_id, make_exchange
from data.history import RETRYABLE
from ccxt.base.errors import NetworkError  # (ccxt.base is a list in ccxt itself)

client = make_exchange("bybit", market_type="linear")
sync_client = make_exchange("binance", async_=False)
try:
    check_exchange_id("bybitt")
    unknown = ""
except UnknownExchangeError as exc:
    unknown = str(exc)
loaded = sorted(k for k in sys.modules if k.startswith("ccxt.async_support.")
                and k.count(".") == 2 and k.rsplit(".", 1)[1] in ("okx", "kraken", "binance"))
print(json.dumps({
    "async_class": type(client).__module__,
    "sync_class": type(sync_client).__module__,
    "okx_loaded": "ccxt.okx" in sys.modules or "ccxt.async_support.okx" in sys.modules,
    "kraken_loaded": "ccxt.kraken" in sys.modules,
    "retryable": [c.__name__ for c in RETRYABLE],
    "same_errors": RETRYABLE[0] is NetworkError,
    "unknown": unknown,
    "others": loaded,
}))
"""


def test_one_exchange_client_loads_only_its_own_module():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         timeout=60, preexec_fn=die_with_test, check=True)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["async_class"] == "ccxt.async_support.bybit"
    assert probe["sync_class"] == "ccxt.binance"
    assert not probe["okx_loaded"] and not probe["kraken_loaded"]
    assert probe["others"] == []  # no other async exchange module came along
    assert probe["retryable"] == ["NetworkError", "RateLimitExceeded"] and probe["same_errors"]
    assert "did you mean bybit" in probe["unknown"]


def test_a_full_ccxt_import_afterwards_still_sees_every_exchange():
    probe = ("from data import ccxt_lazy\nccxt_lazy.load()\nimport ccxt\n"
             "import ccxt.async_support as a\n"
             "print(len(ccxt.exchanges), a.okx.__name__, ccxt.kraken.__name__)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, preexec_fn=die_with_test, check=True)
    count, okx, kraken = out.stdout.split()
    assert int(count) > 90 and okx == "okx" and kraken == "kraken"
