"""`python -m bot migrate-db` and PostgreSQL faults, as an operator meets them: a real SQLite
file, a real PostgreSQL server (tests/pg_support.py), the CLI run as a process."""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from bot.config import QuotaLimits
from bot.ledger.service import Identity
from bot.storage.sql import open_store
from bot.storage.tables import SQLITE_MIGRATIONS as MIGRATIONS
from tests.ledger.support import ALICE, BOB, open_ledger, quotas, usd
from tests.pg_support import fresh_schema, query

ROOT = Path(__file__).resolve().parents[2]
DAVE = Identity("slack", "T9", "dave")


def run(*argv: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "bot", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "BOT_CONFIG": "/nonexistent.toml"},
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def fill(source: Path) -> None:
    """A ledger with every kind of row: settled, held and released jobs, grants, overrides,
    an unlimited scope, the audit log, and a job row."""
    async with open_ledger(source, quotas(daily_usd="5")) as ledger:
        for n, (who, cost) in enumerate([(ALICE, "0.10"), (BOB, "0.0000000001"), (DAVE, "1.25")]):
            await ledger.hold(f"j{n}", who, usd(cost), model="flux")
            await ledger.settle(f"j{n}", usd(cost) * 2)  # above the hold: charged in full
        await ledger.hold("running", ALICE, usd("0.30"), model="wan")
        await ledger.hold("gone", BOB, usd("0.20"), model="wan")
        await ledger.release("gone", reason="cancelled")
        await ledger.grant(ALICE.user_key, usd("0.75"), "sorry", grant_key="g1")
        await ledger.set_limits(BOB.user_key, QuotaLimits(daily_usd=Decimal("0.40")))
        await ledger.set_unlimited(DAVE.user_key, True)
        await ledger._db.run(
            lambda raw: raw.execute(
                "INSERT INTO jobs (id, platform, workspace, user_id, channel_ref, command, model,"
                " request, state, estimate, created_at, updated_at)"
                " VALUES ('running', 'discord', 'g1', 'alice', '{}', 'imagine', 'wan', '{}',"
                " 'submitted', '0.30', 1.5, 2.5)"
            )
        )


@pytest.fixture
def target(postgres_database: str) -> str:
    """An empty PostgreSQL schema to migrate into."""
    return fresh_schema(postgres_database)


async def test_migrate_db_copies_everything_and_never_touches_the_source(
    tmp_path: Path, target: str
) -> None:
    source = tmp_path / "bot.db"
    await fill(source)
    before = digest(source)
    async with open_ledger(source, quotas(daily_usd="5")) as ledger:
        usage = {who: await ledger.usage(who) for who in (ALICE, BOB, DAVE)}

    code, output = run("migrate-db", str(source), target)

    assert code == 0, output
    assert "counts and sums match the source" in output
    assert digest(source) == before
    async with open_ledger(target, quotas(daily_usd="5")) as ledger:
        for who, theirs in usage.items():
            assert await ledger.usage(who) == theirs
        # The copy is a working ledger: grants keep counting from where the source stopped.
        grant = await ledger.grant(BOB.user_key, usd("0.01"), "after the move")
        assert grant.id == 2
    assert query(target, "SELECT state, owner FROM jobs") == [("submitted", None)]
    assert query(target, "SELECT COUNT(*) FROM admin_log") == [(4,)]  # + the grant just made


async def test_a_target_with_rows_is_refused_and_left_as_it_was(
    tmp_path: Path, target: str
) -> None:
    source = tmp_path / "bot.db"
    await fill(source)
    assert run("migrate-db", str(source), target)[0] == 0
    code, output = run("migrate-db", str(source), target)
    assert code == 2 and output.strip().splitlines() == [
        "error: the target is not empty (holds, daily_spend, limit_overrides, unlimited_scopes,"
        " grants, admin_log, ledger_meta, jobs have rows): migrate-db only fills a new database"
    ]
    assert query(target, "SELECT COUNT(*) FROM holds") == [(5,)]


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "postgresql://postgres@127.0.0.1:1/test",
            "error: cannot use PostgreSQL database postgresql://postgres@127.0.0.1:1/test:",
        ),
        (
            "postgresql://postgres@127.0.0.1:5432/no_such_database_here",
            "error: cannot use PostgreSQL database"
            " postgresql://postgres@127.0.0.1:5432/no_such_database_here:",
        ),
    ],
    ids=["unreachable", "no-such-database"],
)
async def test_a_wrong_or_unreachable_target_is_one_line_and_exit_2(
    tmp_path: Path, postgres_database: str, dsn: str, expected: str
) -> None:
    source = tmp_path / "bot.db"
    await fill(source)
    code, output = run("migrate-db", str(source), dsn)
    assert code == 2
    (line,) = output.strip().splitlines()
    assert line.startswith(expected), line


@pytest.fixture
def powerless(postgres_database: str) -> Iterator[str]:
    """A DSN for a role that may connect but not create anything in its schema."""
    role = f"bot_nobody_{secrets.token_hex(4)}"
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_database, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'CREATE SCHEMA "{schema}"')
        admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        try:
            host = postgres_database.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
            yield host + "?options=" + quote(f"-csearch_path={schema}")
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            admin.execute(f'DROP OWNED BY "{role}"')
            admin.execute(f'DROP ROLE "{role}"')


async def test_missing_permissions_are_one_line_and_nothing_is_created(
    tmp_path: Path, powerless: str, postgres_database: str
) -> None:
    source = tmp_path / "bot.db"
    await fill(source)
    code, output = run("migrate-db", str(source), powerless)
    assert code == 2
    (line,) = output.strip().splitlines()
    assert line.startswith("error: cannot use PostgreSQL database") and "permission denied" in line
    schema = powerless.rsplit("%3D", 1)[1]
    tables = query(
        postgres_database,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ?",
        (schema,),
    )
    assert tables == [(0,)]


async def test_a_source_from_a_newer_bot_is_refused_and_not_changed(
    tmp_path: Path, target: str
) -> None:
    source = tmp_path / "bot.db"
    await fill(source)
    with closing(sqlite3.connect(source)) as db:
        db.execute("PRAGMA user_version = 99")
    before = digest(source)
    code, output = run("migrate-db", str(source), target)
    assert code == 2
    assert output.strip().splitlines() == [
        f"error: {source} has schema version 99, newer than this bot's {len(MIGRATIONS)};"
        " upgrade the bot"
    ]
    assert digest(source) == before
    assert query(
        target,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()",
    ) == [(0,)]


async def test_a_postgresql_database_from_a_newer_bot_is_refused(
    tmp_path: Path, target: str
) -> None:
    await (await open_store(target)).close()
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndatabase = "{target}"\n', encoding="utf-8")
    code, output = run("--config", str(config), "usage")
    assert code == 2
    (line,) = output.strip().splitlines()
    assert line.endswith(
        f"has schema version 99, newer than this bot's {len(MIGRATIONS)}; upgrade the bot"
    )


async def test_backup_on_postgresql_names_pg_dump(tmp_path: Path, target: str) -> None:
    await (await open_store(target)).close()
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndatabase = "{target}"\n', encoding="utf-8")
    code, output = run("--config", str(config), "backup", str(tmp_path / "copy.dump"))
    assert code == 2
    (line,) = output.strip().splitlines()
    assert line.startswith("error: storage.database is on PostgreSQL: back it up with")
    assert f"pg_dump --format=custom --file {tmp_path / 'copy.dump'}" in line
    assert not (tmp_path / "copy.dump").exists()


def test_check_shows_the_postgresql_database_without_its_password(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    dsn = "postgresql://bot:s3cret-pw@db.internal:5433/bot?sslmode=require"
    config.write_text(f'[storage]\ndatabase = "{dsn}"\n', encoding="utf-8")
    _, output = run("--config", str(config), "check")
    assert "database: postgresql://bot@db.internal:5433/bot\n" in output
    assert "s3cret" not in output
