"""Where the two backends differ: the SQL translation (bot/storage/postgres.py `translate`) and the schema's
two spellings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.jobs.workers import DB_NOW
from bot.storage.postgres import MIGRATIONS, translate
from bot.storage.sql import open_store
from bot.storage.tables import SQLITE_MIGRATIONS
from tests.pg_support import fresh_schema, query


@pytest.mark.parametrize(
    ("sqlite", "postgres"),
    [
        ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = %s AND b = %s"),
        ("SELECT :user, :pool_1", "SELECT %(user)s, %(pool_1)s"),
        ("SELECT 'a?b:c%d' || ?", "SELECT 'a?b:c%%d' || %s"),
        ("SELECT 'it''s ?'", "SELECT 'it''s ?'"),
        ("SELECT x::text, y % 2", "SELECT x::text, y %% 2"),
        ("SELECT 1 FROM holds INDEXED BY holds_user_active WHERE", "SELECT 1 FROM holds  WHERE"),
        ("SELECT substr(k, instr(k, ':') + 1)", "SELECT substr(k, strpos(k, ':') + 1)"),
        (
            f"SELECT id FROM workers WHERE expires_at > {DB_NOW}",
            "SELECT id FROM workers WHERE expires_at >"
            " CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)",
        ),
    ],
)
def test_translate(sqlite: str, postgres: str) -> None:
    assert translate(sqlite) == postgres


async def test_both_backends_have_the_same_tables_and_columns(
    tmp_path: Path, postgres_database: str
) -> None:
    """The schema is spelled twice (bot/storage/sqlite.py, bot/storage/postgres.py): the spellings must not drift apart."""
    place = fresh_schema(postgres_database)
    await (await open_store(place)).close()
    await (await open_store(tmp_path / "bot.db")).close()
    on_postgres = set(
        query(
            place,
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name <> 'schema_version'",
        )
    )
    tables = [
        t
        for (t,) in query(
            tmp_path / "bot.db", "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    ]
    on_sqlite = {
        (table, column)
        for table in tables
        for (column,) in query(
            tmp_path / "bot.db", f"SELECT name FROM pragma_table_info('{table}')"
        )
    }
    assert on_postgres == on_sqlite
    assert len(MIGRATIONS) == len(SQLITE_MIGRATIONS)
