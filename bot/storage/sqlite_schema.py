"""The SQLite file's tables, as migrations: `MIGRATIONS[i]` brings a file to version `i + 1`.

Append only; a migration only adds, none drops a row. `bot/storage/postgres.py` spells the same versions for
PostgreSQL (tests/storage/test_pg_dialect.py keeps the two in step); the job engine's table is written
once for both (`bot.storage.sql.jobs_table`). `bot.storage.sqlite.Database` applies them, each in its own
transaction.
"""

from __future__ import annotations

from bot.storage.sql import jobs_table

# Version 1: the spend ledger (bot/ledger/service.py). Amounts are INTEGER units of 1e-10 USD, instants
# are INTEGER microseconds since the Unix epoch (UTC).
_LEDGER_SCHEMA = """
CREATE TABLE holds (
    job_id      TEXT PRIMARY KEY,
    user_key    TEXT NOT NULL,              -- platform:workspace:user
    pool_key    TEXT NOT NULL,              -- platform:workspace
    roles       TEXT NOT NULL DEFAULT '[]', -- JSON list, the member's roles when the job began
    model       TEXT NOT NULL,
    held        INTEGER NOT NULL CHECK (held >= 0),
    charged     INTEGER NOT NULL DEFAULT 0 CHECK (charged >= 0),
    state       TEXT NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'settled', 'released')),
    created_at  INTEGER NOT NULL,
    closed_at   INTEGER,                    -- when settled or released
    settled_day TEXT,                       -- local date of the settle in quotas.timezone
    reason      TEXT                        -- why it was released
) WITHOUT ROWID;
-- Every index costs each hold and settle a b-tree write, so there are only these: the active
-- holds per member and per pool (admission; also scanned whole by the sweeper: they hold only
-- running jobs) and a member's recent jobs. Reports scan the table on the reader.
CREATE INDEX holds_user_active ON holds (user_key, held) WHERE state = 'held';
CREATE INDEX holds_pool_active ON holds (pool_key, held, created_at) WHERE state = 'held';
CREATE INDEX holds_user_recent ON holds (user_key, created_at);

-- Settled spend per scope and local day: every period is a run of whole local days, so the
-- admission check reads at most 31 rows per scope however many jobs there were. Derived from
-- `holds` by the trigger below; rebuilt from it when quotas.timezone changes.
CREATE TABLE daily_spend (
    scope_key TEXT NOT NULL,
    day       TEXT NOT NULL,
    charged   INTEGER NOT NULL,
    PRIMARY KEY (scope_key, day)
) WITHOUT ROWID;
CREATE TRIGGER holds_settle_spend AFTER UPDATE OF state ON holds
WHEN NEW.state = 'settled' AND OLD.state <> 'settled'
BEGIN
    INSERT INTO daily_spend (scope_key, day, charged) VALUES (NEW.user_key, NEW.settled_day, NEW.charged)
        ON CONFLICT (scope_key, day) DO UPDATE SET charged = charged + excluded.charged;
    INSERT INTO daily_spend (scope_key, day, charged) VALUES (NEW.pool_key, NEW.settled_day, NEW.charged)
        ON CONFLICT (scope_key, day) DO UPDATE SET charged = charged + excluded.charged;
END;

CREATE TABLE limit_overrides (
    scope_key TEXT NOT NULL,
    period    TEXT NOT NULL CHECK (period IN ('day', 'week', 'month')),
    amount    INTEGER CHECK (amount >= 0),  -- NULL: no limit for this period
    set_by    TEXT NOT NULL,
    set_at    INTEGER NOT NULL,
    PRIMARY KEY (scope_key, period)
) WITHOUT ROWID;

CREATE TABLE unlimited_scopes (
    scope_key TEXT PRIMARY KEY,
    set_by    TEXT NOT NULL,
    set_at    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE grants (
    id         INTEGER PRIMARY KEY,
    grant_key  TEXT UNIQUE,                 -- optional idempotency key
    scope_key  TEXT NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount > 0),
    reason     TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at INTEGER NOT NULL
);
CREATE INDEX grants_scope ON grants (scope_key, granted_at);

CREATE TABLE admin_log (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    scope_key TEXT NOT NULL,
    detail    TEXT NOT NULL
);

CREATE TABLE ledger_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""

# Version 2: the job engine's table (see bot/jobs/store.py for what the columns mean).
_JOBS_SCHEMA = jobs_table(integer="INTEGER", real="REAL")

# Version 3: workers and their leases (bot/jobs/workers.py). Instants are the database's clock in
# Unix seconds (`workers.DB_NOW`); a job's `owner` is the worker driving it, NULL when none is.
_WORKERS_SCHEMA = """
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    expires_at   REAL NOT NULL
) WITHOUT ROWID;
ALTER TABLE jobs ADD COLUMN owner TEXT;
CREATE INDEX jobs_owner ON jobs(owner) WHERE owner IS NOT NULL;
"""

# Version 4: conversations (bot/jobs/conversations.py). A turn is an `ask` job and what the member
# said in it; a place is where a reply continues a conversation (a message, a thread).
_CONVERSATIONS_SCHEMA = """
CREATE TABLE conversation_turns (
    turn         INTEGER PRIMARY KEY,  -- the order turns were taken in
    job_id       TEXT NOT NULL UNIQUE REFERENCES jobs(id),
    conversation TEXT NOT NULL,
    said         TEXT NOT NULL,
    created_at   REAL NOT NULL
);
CREATE INDEX conversation_turns_in ON conversation_turns(conversation, turn);
CREATE TABLE conversation_places (
    platform     TEXT NOT NULL,
    workspace    TEXT NOT NULL,
    place        TEXT NOT NULL,
    conversation TEXT NOT NULL,
    PRIMARY KEY (platform, workspace, place)
) WITHOUT ROWID;
"""

# Version 5: models Runpod no longer serves (bot/runpod/availability.py): consecutive /run calls
# answered 404, and whether the model is hidden until an operator enables it again.
_AVAILABILITY_SCHEMA = """
CREATE TABLE model_availability (
    model      TEXT PRIMARY KEY,
    not_found  INTEGER NOT NULL DEFAULT 0,
    hidden     INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
"""

MIGRATIONS: list[str] = [
    _LEDGER_SCHEMA,
    _JOBS_SCHEMA,
    _WORKERS_SCHEMA,
    _CONVERSATIONS_SCHEMA,
    _AVAILABILITY_SCHEMA,
]
