"""SQLite schema of forward runs, versioned with ``PRAGMA user_version``.

``MIGRATIONS[k]`` upgrades a database from version ``k`` to ``k + 1``; ``migrate`` applies the
missing ones in order, each in its own transaction, at start-up.
"""

from __future__ import annotations

import aiosqlite

from engine.store.errors import StorageError

V1 = """
CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    strategy         TEXT NOT NULL,
    params           TEXT NOT NULL,          -- JSON object
    symbol           TEXT NOT NULL,
    timeframe        TEXT NOT NULL,          -- base timeframe
    timeframes       TEXT NOT NULL,          -- JSON list, base first
    exchange         TEXT NOT NULL,
    market_type      TEXT NOT NULL,          -- spot | linear
    starting_balance REAL NOT NULL,          -- quote currency
    fee_bps          REAL NOT NULL,
    maker_fee_bps    REAL NOT NULL,
    slippage_bps     REAL NOT NULL,
    leverage         REAL NOT NULL DEFAULT 1,
    status           TEXT NOT NULL CHECK (status IN ('running', 'stopped', 'failed')),
    channel_id       INTEGER,                -- Discord channel for alerts
    started_by       TEXT,
    created_at       INTEGER NOT NULL,       -- ms UTC
    updated_at       INTEGER NOT NULL,
    stopped_at       INTEGER,
    stop_reason      TEXT,
    history_start    INTEGER,                -- open time of the first warm-up candle
    last_candle_ts   INTEGER,                -- open time of the last processed base candle
    balance          REAL NOT NULL,
    next_position_id INTEGER NOT NULL DEFAULT 1,
    strategy_state   TEXT NOT NULL DEFAULT '{}',
    mark_price       REAL,
    mark_ts          INTEGER
);
CREATE TABLE positions (
    run_id      TEXT NOT NULL REFERENCES runs(id),
    id          INTEGER NOT NULL,
    side        TEXT NOT NULL CHECK (side IN ('long', 'short')),
    size        REAL NOT NULL,
    entry_price REAL NOT NULL,
    entry_time  INTEGER NOT NULL,
    entry_fee   REAL NOT NULL,
    stop_loss   REAL,
    take_profit REAL,
    margin      REAL NOT NULL,
    tag         TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, id)
);
CREATE TABLE trades (
    run_id      TEXT NOT NULL REFERENCES runs(id),
    id          INTEGER NOT NULL,
    side        TEXT NOT NULL,
    size        REAL NOT NULL,
    entry_time  INTEGER NOT NULL,
    entry_price REAL NOT NULL,
    exit_time   INTEGER NOT NULL,
    exit_price  REAL NOT NULL,
    pnl         REAL NOT NULL,
    entry_fee   REAL NOT NULL,
    exit_fee    REAL NOT NULL,
    exit_reason TEXT NOT NULL,
    stop_loss   REAL,
    take_profit REAL,
    tag         TEXT NOT NULL DEFAULT '',
    settled_on_recovery INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, id)
);
CREATE TABLE equity (
    run_id  TEXT NOT NULL REFERENCES runs(id),
    ts      INTEGER NOT NULL,                -- ms UTC: candle close or snapshot time
    equity  REAL NOT NULL,
    balance REAL NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('candle', 'snapshot')),
    PRIMARY KEY (run_id, kind, ts)
);
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL,
    ts           INTEGER NOT NULL,
    type         TEXT NOT NULL,
    payload      TEXT NOT NULL,              -- JSON of the event
    delivered_at INTEGER,                    -- set once an alert sink has delivered it
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX events_undelivered ON events (delivered_at, id);
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    ts     INTEGER NOT NULL,
    run_id TEXT,
    actor  TEXT NOT NULL,                    -- "engine", "cli", "discord:<user id>"
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
"""

# v2: when each event entered the outbox (alerts held back by a Discord outage are summarised)
V2 = """
ALTER TABLE events ADD COLUMN created_at INTEGER;   -- ms UTC, when the event was stored
"""

# phone-first Discord (issue 10): backtest history, the alert message of each open position (its
# buttons are disabled once it closes) and a thread per run
V_PHONE = """
CREATE TABLE backtests (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,            -- ms UTC
    actor      TEXT NOT NULL,               -- "cli", "discord:<user id>"
    strategy   TEXT NOT NULL,
    symbol     TEXT NOT NULL,
    timeframe  TEXT NOT NULL,
    exchange   TEXT NOT NULL,
    request    TEXT NOT NULL,               -- JSON: the request as given, to run it again
    result     TEXT NOT NULL,               -- JSON: the backtest --json object, trades counted
    out_dir    TEXT                         -- folder of its charts, CSV and JSON
);
CREATE INDEX backtests_created ON backtests (created_at);
CREATE TABLE alert_messages (
    run_id      TEXT NOT NULL,
    position_id INTEGER NOT NULL,
    channel_id  INTEGER NOT NULL,           -- channel or thread of the trade-opened alert
    message_id  INTEGER NOT NULL,
    PRIMARY KEY (run_id, position_id)
);
CREATE TABLE run_threads (
    run_id     TEXT PRIMARY KEY,
    channel_id INTEGER NOT NULL,            -- the parent channel
    thread_id  INTEGER NOT NULL
);
"""

MIGRATIONS: list[str] = [V1, V2, V_PHONE]
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(StorageError):
    """The database was written by a newer paperbot than this one (one line for the user)."""


async def migrate(db: aiosqlite.Connection) -> int:
    """Bring ``db`` to ``SCHEMA_VERSION``; returns the version found before.

    Raises:
        SchemaError: when the database is newer than this code.
    """
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    found = int(row[0]) if row else 0
    if found > SCHEMA_VERSION:
        raise SchemaError(f"schema v{found} is newer than this paperbot (v{SCHEMA_VERSION}); "
                          f"upgrade paperbot, or point --db / PAPERBOT_DB_PATH at another "
                          f"database")
    for version in range(found, SCHEMA_VERSION):
        await db.execute("BEGIN")
        try:
            for statement in _statements(MIGRATIONS[version]):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {version + 1}")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
    return found


def _statements(script: str) -> list[str]:
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
