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

# v3: managing open positions (DESIGN §4b): levels, trailing stop, scale-outs, time exits and
# partial exits survive a restart; every fill that reduced a position is an `exits` row
V3 = """
ALTER TABLE positions ADD COLUMN initial_size REAL;          -- base units at entry
ALTER TABLE positions ADD COLUMN trailing_stop_pct REAL;     -- NULL: no trailing stop
ALTER TABLE positions ADD COLUMN trailing_stop REAL;         -- the trailing level in force
ALTER TABLE positions ADD COLUMN best_price REAL;            -- best high/low held through
ALTER TABLE positions ADD COLUMN take_profits TEXT NOT NULL DEFAULT '[]';  -- [[price, fraction]]
ALTER TABLE positions ADD COLUMN max_hold INTEGER NOT NULL DEFAULT 0;
ALTER TABLE positions ADD COLUMN candles_held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE positions ADD COLUMN realised_pnl REAL NOT NULL DEFAULT 0;  -- of the parts so far
ALTER TABLE positions ADD COLUMN exit_fees REAL NOT NULL DEFAULT 0;
ALTER TABLE positions ADD COLUMN exited_size REAL NOT NULL DEFAULT 0;
ALTER TABLE positions ADD COLUMN exit_value REAL NOT NULL DEFAULT 0;    -- sum of price x size
ALTER TABLE positions ADD COLUMN entry_fee_settled REAL NOT NULL DEFAULT 0;
CREATE TABLE exits (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL REFERENCES runs(id),
    position_id INTEGER NOT NULL,
    time        INTEGER NOT NULL,           -- ms UTC of the fill
    price       REAL NOT NULL,              -- quote, after slippage
    size        REAL NOT NULL,              -- base units that left
    reason      TEXT NOT NULL,
    pnl         REAL NOT NULL,              -- net of its share of the entry fee and its fee
    fee         REAL NOT NULL,
    settled_on_recovery INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX exits_by_position ON exits (run_id, position_id);
"""

# v4: the run lifecycle (DESIGN §4c): a `paused` status (exits only) with its reason, and a
# command queue through which the CLI reaches a running service (pause, resume, panic).
# SQLite cannot change a CHECK constraint in place: the runs table is rebuilt (its children
# reference it by name; foreign keys are off while migrating, see `migrate`).
V4 = """
CREATE TABLE runs_v4 (
    id               TEXT PRIMARY KEY,
    strategy         TEXT NOT NULL,
    params           TEXT NOT NULL,
    symbol           TEXT NOT NULL,
    timeframe        TEXT NOT NULL,
    timeframes       TEXT NOT NULL,
    exchange         TEXT NOT NULL,
    market_type      TEXT NOT NULL,
    starting_balance REAL NOT NULL,
    fee_bps          REAL NOT NULL,
    maker_fee_bps    REAL NOT NULL,
    slippage_bps     REAL NOT NULL,
    leverage         REAL NOT NULL DEFAULT 1,
    status           TEXT NOT NULL CHECK (status IN ('running', 'paused', 'stopped',
                                                     'failed')),
    channel_id       INTEGER,
    started_by       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    stopped_at       INTEGER,
    stop_reason      TEXT,                  -- why it stopped, failed or is paused
    history_start    INTEGER,
    last_candle_ts   INTEGER,
    balance          REAL NOT NULL,
    next_position_id INTEGER NOT NULL DEFAULT 1,
    strategy_state   TEXT NOT NULL DEFAULT '{}',
    mark_price       REAL,
    mark_ts          INTEGER
);
INSERT INTO runs_v4 SELECT * FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v4 RENAME TO runs;
CREATE TABLE commands (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,            -- ms UTC
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,               -- pause | resume | panic
    args       TEXT NOT NULL DEFAULT '{}',  -- JSON
    done_at    INTEGER,                     -- set by the service that carried it out
    ok         INTEGER,
    result     TEXT                         -- one line for the user
);
"""

# risk guards (DESIGN §4c): the protections a run resolved at start, and its guards' state
# (locks, stop-loss windows, the day's reference and the peak equity) written with each candle
# v5: risk guards
V5 = """
ALTER TABLE runs ADD COLUMN protections TEXT NOT NULL DEFAULT '{}';  -- JSON {name: value}
ALTER TABLE runs ADD COLUMN guard_state TEXT NOT NULL DEFAULT '{}';  -- JSON, engine.risk.Guards
"""

# v6: phone-first Discord (issue 10): backtest history, the alert message of each open position (its
# buttons are disabled once it closes) and a thread per run
V6 = """
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

# v7: perpetuals (issue 12): the run's leverage was stored since v1; now its maintenance margin
# rate, each position's funding and liquidation level, each trade's funding, and what forward
# runs saw of open interest and funding (per candle) and the settlements they knew, so that a
# backtest over the same candles reproduces them (engine.store.perp_inputs)
V7 = """
ALTER TABLE runs ADD COLUMN maintenance_margin_rate REAL NOT NULL DEFAULT 0;  -- fraction
ALTER TABLE positions ADD COLUMN funding REAL NOT NULL DEFAULT 0;    -- quote, negative = paid
ALTER TABLE positions ADD COLUMN liquidation_price REAL;             -- NULL: leverage 1
ALTER TABLE trades ADD COLUMN funding REAL NOT NULL DEFAULT 0;       -- quote, negative = paid
CREATE TABLE perp_inputs (
    exchange      TEXT NOT NULL,
    symbol        TEXT NOT NULL,             -- unified, e.g. BTC/USDT:USDT
    timeframe     TEXT NOT NULL,             -- the run's base timeframe
    ts            INTEGER NOT NULL,          -- candle open time, ms UTC
    open_interest REAL,                      -- base units known at the close (NULL: unknown)
    funding_rate  REAL,                      -- last published at the close (NULL: unknown)
    PRIMARY KEY (exchange, symbol, timeframe, ts)
) WITHOUT ROWID;
CREATE TABLE funding_settlements (
    exchange TEXT NOT NULL,
    symbol   TEXT NOT NULL,
    ts       INTEGER NOT NULL,               -- settlement time, ms UTC
    rate     REAL NOT NULL,                  -- fraction per funding interval
    PRIMARY KEY (exchange, symbol, ts)
) WITHOUT ROWID;
"""

MIGRATIONS: list[str] = [V1, V2, V3, V4, V5, V6, V7]
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
    if found == SCHEMA_VERSION:
        return found
    # a rebuilt table drops its old self: child rows must not be cascaded meanwhile (SQLite's
    # "other kinds of table schema changes" procedure); checked again before committing
    await db.execute("PRAGMA foreign_keys=OFF")
    try:
        for version in range(found, SCHEMA_VERSION):
            await db.execute("BEGIN")
            try:
                for statement in _statements(MIGRATIONS[version]):
                    await db.execute(statement)
                async with db.execute("PRAGMA foreign_key_check") as cur:
                    broken = await cur.fetchall()
                if broken:
                    raise SchemaError(f"migration to v{version + 1} left {len(broken)} rows "
                                      f"without their run (first: {tuple(broken[0])})")
                await db.execute(f"PRAGMA user_version = {version + 1}")
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
    finally:
        await db.execute("PRAGMA foreign_keys=ON")
    return found


def _statements(script: str) -> list[str]:
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
