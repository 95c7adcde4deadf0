"""The SQLite file's tables, as migrations: `MIGRATIONS[i]` brings a file to version `i + 1`.

The core's tables (`bot.storage.tables`) spelled for SQLite: INTEGER units of 1e-10 USD and
microseconds, REAL seconds, WITHOUT ROWID where a table is read by its key. PostgreSQL has the
same versions (`bot.storage.postgres_schema`; tests/storage/test_pg_dialect.py keeps the two in
step). `bot.storage.sqlite.Database` applies them, each in its own transaction.
"""

from __future__ import annotations

from bot.storage.tables import Spelling, migrations

_SETTLE_TRIGGER = """CREATE TRIGGER holds_settle_spend AFTER UPDATE OF state ON holds
WHEN NEW.state = 'settled' AND OLD.state <> 'settled'
BEGIN
    INSERT INTO daily_spend (scope_key, day, charged) VALUES (NEW.user_key, NEW.settled_day, NEW.charged)
        ON CONFLICT (scope_key, day) DO UPDATE SET charged = charged + excluded.charged;
    INSERT INTO daily_spend (scope_key, day, charged) VALUES (NEW.pool_key, NEW.settled_day, NEW.charged)
        ON CONFLICT (scope_key, day) DO UPDATE SET charged = charged + excluded.charged;
END;"""

SQLITE = Spelling(
    integer="INTEGER",
    real="REAL",
    serial="INTEGER PRIMARY KEY",
    keyed=" WITHOUT ROWID",
    settle_trigger=_SETTLE_TRIGGER,
    comments=True,
)

MIGRATIONS: list[str] = migrations(SQLITE)
