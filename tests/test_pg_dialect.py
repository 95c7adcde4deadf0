"""The one place SQLite's spelling becomes PostgreSQL's (bot/pg.py `translate`)."""

from __future__ import annotations

import pytest

from bot.pg import translate
from bot.workers import DB_NOW


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
