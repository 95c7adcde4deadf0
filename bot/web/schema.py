"""The web page's tables and indexes, made on first use (`IF NOT EXISTS`).

They are the page's own: sign-in links and sessions, and the indexes its gallery reads the jobs
table by. Spelled for both databases (SQLite and PostgreSQL: `DOUBLE PRECISION` instants, as
PostgreSQL's `REAL` would round them to minutes). Made by the page rather than as a core migration, so a bot that never serves the page
carries none of them and the core's schema versions are the core's alone.
"""

from __future__ import annotations

from bot.storage.sql import Connection, Store, lock_scopes
from bot.storage.sqlite import split_statements

# A sign-in link and a session each stand for one member: who, with which roles and name as the
# adapter saw them when the link was made.
_BEARER = """\
    token_hash TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    workspace TEXT NOT NULL,
    user_id TEXT NOT NULL,
    roles TEXT NOT NULL,
    name TEXT NOT NULL,
    admin INTEGER NOT NULL,"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS web_links (
{_BEARER}
    expires_at DOUBLE PRECISION NOT NULL,
    used_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS web_sessions (
{_BEARER}
    csrf TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    ended_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS web_sessions_member ON web_sessions (platform, workspace, user_id);
-- Results taken off the page by their owner or an admin, and members who hid all of theirs.
CREATE TABLE IF NOT EXISTS web_hidden_results (
    job_id TEXT PRIMARY KEY,
    hidden_by TEXT NOT NULL,
    hidden_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS web_hidden_members (
    platform TEXT NOT NULL,
    workspace TEXT NOT NULL,
    user_id TEXT NOT NULL,
    hidden_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (platform, workspace, user_id)
);
-- Members' names as the adapters last saw them (bot/web/names.py).
CREATE TABLE IF NOT EXISTS web_names (
    platform TEXT NOT NULL,
    workspace TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (platform, workspace, user_id)
);
-- The gallery's: a workspace's results newest first, and its models and members for the filters
-- (10,000 results: a page in ~40 ms without them, see docs/web.md).
CREATE INDEX IF NOT EXISTS jobs_web_newest ON jobs (platform, workspace, created_at);
CREATE INDEX IF NOT EXISTS jobs_web_models ON jobs (platform, workspace, model, state);
CREATE INDEX IF NOT EXISTS jobs_web_members ON jobs (platform, workspace, user_id, state);
"""


async def ensure_schema(db: Store) -> None:
    def make(raw: Connection) -> None:
        # PostgreSQL: two processes creating the same table at once would collide; wait instead.
        lock_scopes(raw, "web_schema")
        for statement in split_statements(SCHEMA):
            raw.execute(statement)

    await db.run(make)
