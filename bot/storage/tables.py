"""The core's tables, written once and spelled per backend: `MIGRATIONS[i]` brings a database
to version `i + 1` (`bot.storage.sqlite_schema` and `bot.storage.postgres_schema` hold the
spellings).

Append only; a migration only adds, none drops a row. The text of an applied migration must
never change: SQLite keeps each `CREATE` statement as written, comments included (`.schema`
shows them), so the comments here are part of SQLite's text; PostgreSQL discards them, and its
text is the same with comments and blank lines left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Spelling:
    """One backend's names for what the tables need."""

    integer: str  # a 64-bit integer: money in units of 1e-10 USD, instants in microseconds
    real: str  # a double: instants in Unix seconds
    serial: str  # an integer primary key the database numbers
    keyed: str  # after a table looked up by its primary key only (SQLite: WITHOUT ROWID)
    settle_trigger: str  # adds a settled hold's charge to `daily_spend`
    comments: bool  # whether the text keeps its SQL comments


def migrations(s: Spelling) -> list[str]:
    """The core's migrations in one backend's spelling."""
    versions = [ledger(s), jobs(s), workers(s), conversations(s), availability(s)]
    return versions if s.comments else [_without_comments(sql) for sql in versions]


def _without_comments(sql: str) -> str:
    lines = (re.sub(r"\s*--.*$", "", line) for line in sql.split("\n"))
    return "\n" + "\n".join(line for line in lines if line) + "\n"


def ledger(s: Spelling) -> str:
    """Version 1: the spend ledger (bot/ledger/service.py)."""
    return f"""
CREATE TABLE holds (
    job_id      TEXT PRIMARY KEY,
    user_key    TEXT NOT NULL,              -- platform:workspace:user
    pool_key    TEXT NOT NULL,              -- platform:workspace
    roles       TEXT NOT NULL DEFAULT '[]', -- JSON list, the member's roles when the job began
    model       TEXT NOT NULL,
    held        {s.integer} NOT NULL CHECK (held >= 0),
    charged     {s.integer} NOT NULL DEFAULT 0 CHECK (charged >= 0),
    state       TEXT NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'settled', 'released')),
    created_at  {s.integer} NOT NULL,
    closed_at   {s.integer},                    -- when settled or released
    settled_day TEXT,                       -- local date of the settle in quotas.timezone
    reason      TEXT                        -- why it was released
){s.keyed};
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
    charged   {s.integer} NOT NULL,
    PRIMARY KEY (scope_key, day)
){s.keyed};
{s.settle_trigger}

CREATE TABLE limit_overrides (
    scope_key TEXT NOT NULL,
    period    TEXT NOT NULL CHECK (period IN ('day', 'week', 'month')),
    amount    {s.integer} CHECK (amount >= 0),  -- NULL: no limit for this period
    set_by    TEXT NOT NULL,
    set_at    {s.integer} NOT NULL,
    PRIMARY KEY (scope_key, period)
){s.keyed};

CREATE TABLE unlimited_scopes (
    scope_key TEXT PRIMARY KEY,
    set_by    TEXT NOT NULL,
    set_at    {s.integer} NOT NULL
){s.keyed};

CREATE TABLE grants (
    id         {s.serial},
    grant_key  TEXT UNIQUE,                 -- optional idempotency key
    scope_key  TEXT NOT NULL,
    amount     {s.integer} NOT NULL CHECK (amount > 0),
    reason     TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at {s.integer} NOT NULL
);
CREATE INDEX grants_scope ON grants (scope_key, granted_at);

CREATE TABLE admin_log (
    id        {s.serial},
    at        {s.integer} NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    scope_key TEXT NOT NULL,
    detail    TEXT NOT NULL
);

CREATE TABLE ledger_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
){s.keyed};
"""


def jobs(s: Spelling) -> str:
    """Version 2: the job engine's table (bot/jobs/store.py says what the columns mean)."""
    return f"""
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
    notified {s.integer} NOT NULL DEFAULT 0,
    created_at {s.real} NOT NULL,
    updated_at {s.real} NOT NULL,
    finished_at {s.real}
);
CREATE INDEX jobs_unfinished ON jobs(state, notified);
CREATE INDEX jobs_cache ON jobs(cache_key) WHERE cache_key IS NOT NULL;
CREATE INDEX jobs_by_user ON jobs(platform, workspace, user_id, created_at);
"""


def workers(s: Spelling) -> str:
    """Version 3: workers and their leases (bot/jobs/workers.py). Instants are the database's
    clock in Unix seconds (`workers.DB_NOW`); a job's `owner` is the worker driving it, NULL
    when none is."""
    return f"""
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          {s.integer} NOT NULL,
    started_at   {s.real} NOT NULL,
    heartbeat_at {s.real} NOT NULL,
    expires_at   {s.real} NOT NULL
){s.keyed};
ALTER TABLE jobs ADD COLUMN owner TEXT;
CREATE INDEX jobs_owner ON jobs(owner) WHERE owner IS NOT NULL;
"""


def conversations(s: Spelling) -> str:
    """Version 4: conversations (bot/jobs/conversations.py). A turn is an `ask` job and what the
    member said in it; a place is where a reply continues a conversation (a message, a thread)."""
    return f"""
CREATE TABLE conversation_turns (
    turn         {s.serial},  -- the order turns were taken in
    job_id       TEXT NOT NULL UNIQUE REFERENCES jobs(id),
    conversation TEXT NOT NULL,
    said         TEXT NOT NULL,
    created_at   {s.real} NOT NULL
);
CREATE INDEX conversation_turns_in ON conversation_turns(conversation, turn);
CREATE TABLE conversation_places (
    platform     TEXT NOT NULL,
    workspace    TEXT NOT NULL,
    place        TEXT NOT NULL,
    conversation TEXT NOT NULL,
    PRIMARY KEY (platform, workspace, place)
){s.keyed};
"""


def availability(s: Spelling) -> str:
    """Version 5: models Runpod no longer serves (bot/runpod/availability.py): consecutive /run
    calls answered 404, and whether the model is hidden until an operator enables it again."""
    return f"""
CREATE TABLE model_availability (
    model      TEXT PRIMARY KEY,
    not_found  {s.integer} NOT NULL DEFAULT 0,
    hidden     {s.integer} NOT NULL DEFAULT 0,
    updated_at {s.real} NOT NULL
){s.keyed};
"""
