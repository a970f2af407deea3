"""Moving perpetual candles out of spot-named cache files (caches written before the split).

Older versions named a perpetual's files like the spot pair's (``BTC/USDT:USDT`` on bybit went
to ``bybit_BTC-USDT_1h.parquet``), so spot and perpetual candles could share a file. The name
alone cannot tell them apart; two facts can, and only those are acted on:

1. the exchange id lists perpetuals only (``binanceusdm``, see
   ``data.symbols.LINEAR_ONLY_EXCHANGES``): every file of it holds perpetual candles;
2. an old open interest file sits beside the candles
   (``{exchange}_{BASE}-{QUOTE}_{timeframe}.oi.parquet``): open interest exists for
   perpetuals only, and ``data fetch --open-interest`` fetched it with the same perpetual
   symbol, timeframe and cache name as the candles beside it.

Those files are renamed to the perpetual layout (``…_BASE-QUOTE-SETTLE_…``); when the new
name already exists the two are merged (the new file's rows win) and the old one is removed.
Any other spot-named file stays spot: ``../shared/data`` and most caches are spot candles. If
you know that such a file holds perpetual candles, rename it by hand (``mv
bybit_BTC-USDT_1h.parquet bybit_BTC-USDT-USDT_1h.parquet``).

Each move is logged at WARNING (shown once by the CLI); a folder that cannot be written is
logged and left as it is, never an error.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from data.symbols import LINEAR_ONLY_EXCHANGES, parse_cache_name

log = logging.getLogger(__name__)

_OLD_OI = re.compile(r"^(?P<exchange>[a-z0-9]+)_(?P<base>[A-Z0-9]+)-(?P<quote>[A-Z0-9]+)_"
                     r"(?P<timeframe>[1-9][0-9]*[mhdw])\.oi\.parquet$")

#: Folders already migrated in this process (resolved paths).
_done: set[Path] = set()


def ensure_migrated(data_dir: Path) -> None:
    """``migrate_cache(data_dir)`` once per folder and process."""
    key = Path(data_dir).resolve()
    if key not in _done:
        migrate_cache(data_dir)
        _done.add(key)


def migrate_cache(data_dir: Path) -> list[tuple[Path, Path]]:
    """Rename perpetual candles and open interest stored under spot names (see the module
    docstring); returns the ``(old, new)`` paths moved."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return []
    moves: list[tuple[Path, Path]] = []
    for path in sorted(data_dir.glob("*.oi.parquet")):
        match = _OLD_OI.match(path.name)
        if match is None:
            continue
        exchange, base, quote, tf = (match[k] for k in ("exchange", "base", "quote", "timeframe"))
        pair, perp_pair = f"{base}-{quote}", f"{base}-{quote}-{quote}"
        moves.append((path, data_dir / f"{exchange}_{perp_pair}_{tf}.oi.parquet"))
        candles = data_dir / f"{exchange}_{pair}_{tf}.parquet"
        if candles.exists():
            moves.append((candles, data_dir / f"{exchange}_{perp_pair}_{tf}.parquet"))
    for path in sorted(data_dir.glob("*.parquet")):
        parsed = parse_cache_name(path.name)
        if parsed is not None and parsed[0] in LINEAR_ONLY_EXCHANGES and ":" not in parsed[1]:
            exchange, symbol, tf = parsed
            base, quote = symbol.split("/")
            moves.append((path, data_dir / f"{exchange}_{base}-{quote}-{quote}_{tf}.parquet"))
    done = []
    for old, new in dict(moves).items():  # each file once
        try:
            _move(old, new)
        except (OSError, ValueError) as exc:
            log.warning("cache: could not move %s to %s: %s", old.name, new.name, exc)
            continue
        log.warning("cache: moved %s to %s (perpetual %s)", old.name, new.name,
                    "open interest" if old.name.endswith(".oi.parquet") else "candles")
        done.append((old, new))
    return done


def _move(old: Path, new: Path) -> None:
    """Rename ``old`` to ``new``, or merge it into an existing ``new`` (whose rows win)."""
    if not new.exists():
        os.replace(old, new)
        return
    if new.name.endswith(".oi.parquet"):
        from data.cache import write_table
        from data.perp_store import OPEN_INTEREST, clean_series, read_series

        (ts, values), (new_ts, new_values) = (read_series(p, OPEN_INTEREST) for p in (old, new))
        write_table(new, clean_series(np.concatenate([ts, new_ts]),
                                      np.concatenate([values, new_values]), OPEN_INTEREST))
    else:
        from data.cache import merge_frames, read_candles, write_candles

        write_candles(new, merge_frames(read_candles(old, extra=True),
                                        read_candles(new, extra=True)))
    old.unlink()
