"""A throwaway PostgreSQL database for the test session, and the backend fixture's places.

The server is `TEST_POSTGRES_URL` (default: the project machines' 127.0.0.1:5432, trust auth,
user `postgres`, database `test`). The session creates `bot_test_<random>` on it, gives each
test a schema of its own there (`search_path` in the DSN), and drops the database at the end.
Without a server the PostgreSQL half skips with one reason; under CI (`CI=true`) it fails.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from bot.storage.postgres import plain, translate
from bot.storage.sql import is_postgres

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_SERVER)


def with_database(url: str, name: str, query: str = "") -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, query, ""))


def throwaway_database() -> Iterator[str]:
    """Yield the DSN of a new empty database; drop it afterwards."""
    url = server_url()
    try:
        admin = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        reason = f"no PostgreSQL server at {url}: {str(exc).strip().splitlines()[0]}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: the PostgreSQL tests must run)")
        pytest.skip(reason)
    name = f"bot_test_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(url, name)
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def fresh_schema(database_url: str) -> str:
    """A new empty schema in the session's database; the DSN that uses it."""
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return database_url + "?options=" + quote(f"-csearch_path={schema}")


def query(place: str | Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Rows of one statement (SQLite's spelling) read from outside the bot, on either backend."""
    if is_postgres(place):
        with psycopg.connect(str(place), autocommit=True) as conn:
            cursor = conn.execute(translate(sql), params)
            return [tuple(plain(v) for v in row) for row in cursor.fetchall()]
    with closing(sqlite3.connect(f"file:{place}?mode=ro", uri=True)) as db:
        return [tuple(row) for row in db.execute(sql, params).fetchall()]


def execute(place: str | Path, sql: str, params: tuple[object, ...] = ()) -> None:
    """One write from outside the bot (a test standing in for another process or a pause)."""
    if is_postgres(place):
        with psycopg.connect(str(place), autocommit=True) as conn:
            conn.execute(translate(sql), params)
        return
    with closing(sqlite3.connect(place)) as db, db:
        db.execute(sql, params)
