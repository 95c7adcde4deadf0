"""The core's tables as migrations: `SQLITE_MIGRATIONS[i]` and `POSTGRES_MIGRATIONS[i]` bring a
database to version `i + 1`; `bot.storage.sqlite.Database` and `bot.storage.postgres.PgDatabase`
apply them in order, each once, each in its own transaction.

Written once, in SQLite's spelling, as the ledger's SQL is (`bot.storage.sql`); PostgreSQL's is
translated from it here: BIGINT for INTEGER (money in units of 1e-10 USD, instants in
microseconds), DOUBLE PRECISION for REAL (instants in seconds), an identity column for an integer
key, no WITHOUT ROWID, the triggers as PL/pgSQL functions.

Append only; a migration only adds, none drops a row. The text of an applied migration must
never change: SQLite keeps each `CREATE` statement as written, comments included (`.schema`
shows them); PostgreSQL discards comments, so its text leaves them out.
"""

from __future__ import annotations

import re

# Version 1: the spend ledger (bot/ledger/service.py). Amounts are INTEGER units of 1e-10 USD, instants
# are INTEGER microseconds since the Unix epoch (UTC).
_LEDGER = """
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

# Version 2: the job engine's table (bot/jobs/store.py says what the columns mean).
_JOBS = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    workspace TEXT NOT NULL,
    user_id TEXT NOT NULL,
    channel_ref TEXT NOT NULL,
    command TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    estimate TEXT NOT NULL,
    cost TEXT,
    copies TEXT NOT NULL DEFAULT '[]',
    webhook_token TEXT,
    cache_key TEXT,
    error TEXT,
    notified INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX jobs_unfinished ON jobs(state, notified);
CREATE INDEX jobs_cache ON jobs(cache_key) WHERE cache_key IS NOT NULL;
CREATE INDEX jobs_by_user ON jobs(platform, workspace, user_id, created_at);
"""

# Version 3: workers and their leases (bot/jobs/workers.py). Instants are the database's clock in
# Unix seconds (`workers.DB_NOW`); a job's `owner` is the worker driving it, NULL when none is.
_WORKERS = """
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
_CONVERSATIONS = """
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
_AVAILABILITY = """
CREATE TABLE model_availability (
    model      TEXT PRIMARY KEY,
    not_found  INTEGER NOT NULL DEFAULT 0,
    hidden     INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
"""

# Version 6: the active-hold indexes carry `state`, so that admission sums a scope's active holds
# from the index alone. Without it SQLite looked every entry up in `holds` to read a column the
# index's WHERE already fixes (~2,500 instructions an active hold: with 50 jobs in flight in a
# pool, most of the admission read). The same entries and names as version 1's.
_COVERING_HOLDS = """
DROP INDEX holds_user_active;
CREATE INDEX holds_user_active ON holds (user_key, held, state) WHERE state = 'held';
DROP INDEX holds_pool_active;
CREATE INDEX holds_pool_active ON holds (pool_key, held, created_at, state) WHERE state = 'held';
"""

# Version 7: each scope's active holds as one running total, kept by triggers as `daily_spend` is.
# Admission summed them from the index instead, every entry: with 5,000 jobs held in one
# workspace (a queue behind `jobs.max_global`), a hold and settle cost three times what it cost
# with none. The member's index served only that sum; the pool's still serves the sweeper.
# The triggers change the pool's row before the member's: a release or the sweeper takes no
# advisory lock, so on PostgreSQL a hold taking the member's row first could deadlock with a
# sweep that holds the pool's row and reaches that member's.
_ACTIVE_HOLDS = """
CREATE TABLE active_holds (
    scope_key TEXT PRIMARY KEY,
    held      INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO active_holds (scope_key, held)
SELECT scope_key, SUM(held) FROM (
    SELECT user_key AS scope_key, held FROM holds WHERE state = 'held'
    UNION ALL
    SELECT pool_key, held FROM holds WHERE state = 'held') AS active
GROUP BY scope_key;
CREATE TRIGGER holds_begin_active AFTER INSERT ON holds
WHEN NEW.state = 'held'
BEGIN
    INSERT INTO active_holds (scope_key, held) VALUES (NEW.pool_key, NEW.held)
        ON CONFLICT (scope_key) DO UPDATE SET held = held + excluded.held;
    INSERT INTO active_holds (scope_key, held) VALUES (NEW.user_key, NEW.held)
        ON CONFLICT (scope_key) DO UPDATE SET held = held + excluded.held;
END;
CREATE TRIGGER holds_end_active AFTER UPDATE OF state ON holds
WHEN OLD.state = 'held' AND NEW.state <> 'held'
BEGIN
    UPDATE active_holds SET held = held - OLD.held WHERE scope_key = OLD.pool_key;
    UPDATE active_holds SET held = held - OLD.held WHERE scope_key = OLD.user_key;
END;
DROP INDEX holds_user_active;
"""

SQLITE_MIGRATIONS: list[str] = [
    _LEDGER,
    _JOBS,
    _WORKERS,
    _CONVERSATIONS,
    _AVAILABILITY,
    _COVERING_HOLDS,
    _ACTIVE_HOLDS,
]


_POSTGRES_SETTLE_SPEND = """CREATE FUNCTION holds_settle_spend() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO daily_spend AS d (scope_key, day, charged) VALUES (NEW.user_key, NEW.settled_day, NEW.charged)
        ON CONFLICT (scope_key, day) DO UPDATE SET charged = d.charged + excluded.charged;
    INSERT INTO daily_spend AS d (scope_key, day, charged) VALUES (NEW.pool_key, NEW.settled_day, NEW.charged)
        ON CONFLICT (scope_key, day) DO UPDATE SET charged = d.charged + excluded.charged;
    RETURN NEW;
END $$;
CREATE TRIGGER holds_settle_spend AFTER UPDATE OF state ON holds FOR EACH ROW
WHEN (NEW.state = 'settled' AND OLD.state <> 'settled')
EXECUTE FUNCTION holds_settle_spend();"""

_POSTGRES_BEGIN_ACTIVE = """CREATE FUNCTION holds_begin_active() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO active_holds AS a (scope_key, held) VALUES (NEW.pool_key, NEW.held)
        ON CONFLICT (scope_key) DO UPDATE SET held = a.held + excluded.held;
    INSERT INTO active_holds AS a (scope_key, held) VALUES (NEW.user_key, NEW.held)
        ON CONFLICT (scope_key) DO UPDATE SET held = a.held + excluded.held;
    RETURN NEW;
END $$;
CREATE TRIGGER holds_begin_active AFTER INSERT ON holds FOR EACH ROW
WHEN (NEW.state = 'held')
EXECUTE FUNCTION holds_begin_active();"""

_POSTGRES_END_ACTIVE = """CREATE FUNCTION holds_end_active() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE active_holds SET held = held - OLD.held WHERE scope_key = OLD.pool_key;
    UPDATE active_holds SET held = held - OLD.held WHERE scope_key = OLD.user_key;
    RETURN NEW;
END $$;
CREATE TRIGGER holds_end_active AFTER UPDATE OF state ON holds FOR EACH ROW
WHEN (OLD.state = 'held' AND NEW.state <> 'held')
EXECUTE FUNCTION holds_end_active();"""

# SQLite's word -> PostgreSQL's (an integer key first: it contains INTEGER).
_POSTGRES_WORDS = {
    "INTEGER PRIMARY KEY": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    "INTEGER": "BIGINT",
    "REAL": "DOUBLE PRECISION",
    " WITHOUT ROWID": "",
}
_WORDS = re.compile("|".join(rf"(?<!\w){re.escape(word)}(?!\w)" for word in _POSTGRES_WORDS))
# Each SQLite trigger -> its PostgreSQL function and trigger, by the trigger's name.
_POSTGRES_TRIGGERS = {
    "holds_settle_spend": _POSTGRES_SETTLE_SPEND,
    "holds_begin_active": _POSTGRES_BEGIN_ACTIVE,
    "holds_end_active": _POSTGRES_END_ACTIVE,
}
_SQLITE_TRIGGER = re.compile(r"^CREATE TRIGGER (\w+) .*?^END;", re.S | re.M)


def for_postgres(sql: str) -> str:
    """A migration in SQLite's spelling, spelled for PostgreSQL."""
    sql = _SQLITE_TRIGGER.sub(lambda match: _POSTGRES_TRIGGERS[match.group(1)], sql)
    sql = _WORDS.sub(lambda match: _POSTGRES_WORDS[match.group()], sql)
    lines = (re.sub(r"\s*--.*$", "", line) for line in sql.split("\n"))
    return "\n" + "\n".join(line for line in lines if line) + "\n"


POSTGRES_MIGRATIONS: list[str] = [for_postgres(sql) for sql in SQLITE_MIGRATIONS]
