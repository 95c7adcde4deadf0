"""Shared fixtures: a clean environment, a FakeRunpod with every catalog endpoint, settings, core."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine

from bot.app import Core, open_core
from bot.config import Settings
from bot.runpod.catalog import load_catalog
from tests.fakes.runpod import FakeRunpod
from tests.ledger.support import ZONE_VARIABLE
from tests.moments import MOMENTS, Moment
from tests.pg_support import fresh_schema, throwaway_database

pytest_plugins = ["tests.discord.fixtures", "tests.slack.fixtures"]

API_KEY = "rp_test_key_SECRET_0123456789"
ROOT = Path(__file__).resolve().parent.parent
_FAKE_KINDS = {"image_edit": "image"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "bot_settings(archive=False, **sections): settings sections for the folder's `bot` fixture",
    )


def marked_sections(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The sections a test's `bot_settings` marker (or its module's `pytestmark`) asks for;
    `archive=True` keeps every result in an archive folder under `tmp_path`."""
    marker = request.node.get_closest_marker("bot_settings")
    sections = dict(marker.kwargs) if marker else {}
    if sections.pop("archive", False):
        storage = {**sections.get("storage", {}), "media_dir": str(tmp_path / "media")}
        sections["storage"] = storage
    return sections


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No real credentials, proxies or config files leak into a test; children run this code."""
    for name in list(os.environ):
        if (
            name.startswith("BOT_")
            or name.lower().endswith("_proxy")
            or name
            in (
                "RUNPOD_API_KEY",
                "DISCORD_TOKEN",
                "SLACK_BOT_TOKEN",
                "SLACK_SIGNING_SECRET",
                "SLACK_APP_TOKEN",
            )
        ):
            monkeypatch.delenv(name, raising=False)
    # Child processes (`python -m bot ...`) import this checkout, whatever is pip-installed.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    yield


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """This run's throwaway PostgreSQL database (tests/pg_support.py); skips without a server."""
    yield from throwaway_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_place(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's database lives: an SQLite file, or an empty PostgreSQL schema."""
    if request.param == "sqlite":
        return tmp_path / "bot.db"
    return fresh_schema(request.getfixturevalue("postgres_database"))


@pytest.fixture(params=[None, *MOMENTS], ids=lambda m: m.name if m else "today")
def moved_clock(request: pytest.FixtureRequest) -> Iterator[Moment | None]:
    """Run the test today and again with the wall clock frozen at each period edge in MOMENTS.

    For a moment the process's local zone (TZ) and the zone `ledger_support.quotas()` gives
    the ledger are the moment's own; subprocesses learn the instant from MOVED_CLOCK_AT.
    """
    moment: Moment | None = request.param
    if moment is None:
        yield None
        return
    saved = {name: os.environ.get(name) for name in ("TZ", ZONE_VARIABLE, "MOVED_CLOCK_AT")}
    os.environ.update(
        TZ=moment.zone, **{ZONE_VARIABLE: moment.zone, "MOVED_CLOCK_AT": moment.instant.isoformat()}
    )
    time.tzset()
    try:
        with time_machine.travel(moment.instant, tick=False):
            yield moment
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        time.tzset()


def register_catalog(fake: FakeRunpod) -> None:
    for model in load_catalog():
        fake.endpoint(model.endpoint, kind=_FAKE_KINDS.get(model.kind, model.kind))  # type: ignore[arg-type]


@pytest.fixture
async def runpod_fake() -> AsyncIterator[FakeRunpod]:
    async with FakeRunpod(api_key=API_KEY) as fake:
        register_catalog(fake)
        yield fake


def make_settings(
    tmp_path: Path,
    fake: FakeRunpod,
    *,
    database: Path | str | None = None,
    **sections: dict[str, Any],
) -> Settings:
    """Test settings; `database` (default an SQLite file in `tmp_path`) may be a `db_place`."""
    base: dict[str, dict[str, Any]] = {
        "runpod": {"api_key": API_KEY, "base_url": fake.base_url, "max_retries": 3},
        "storage": {
            "database": str(database or tmp_path / "bot.db"),
            "spool": str(tmp_path / "spool"),
        },
        "jobs": {"progress_interval_s": 0.05, "confirm_above_usd": "5.00"},
        "http": {"host": "127.0.0.1", "port": 0},
        # The fakes serve results from 127.0.0.1 (tests/runpod/test_private_urls.py turns this off).
        "security": {"allow_private_urls": True},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Settings(**base)


def process_env(
    tmp_path: Path, fake: FakeRunpod, *, database: Path | str | None = None, **variables: str
) -> dict[str, str]:
    """The environment of a `python -m bot ...` child on the fakes: `make_settings` for a process."""
    return {
        **os.environ,
        "RUNPOD_API_KEY": API_KEY,
        "BOT_RUNPOD__BASE_URL": fake.base_url,
        "BOT_STORAGE__DATABASE": str(database or tmp_path / "bot.db"),
        "BOT_STORAGE__SPOOL": str(tmp_path / "spool"),
        "BOT_HTTP__HOST": "127.0.0.1",
        "BOT_HTTP__PORT": "0",
        "BOT_SECURITY__ALLOW_PRIVATE_URLS": "true",
        "BOT_CONFIG": str(tmp_path / "absent.toml"),
        **variables,
    }


@pytest.fixture
def settings(tmp_path: Path, runpod_fake: FakeRunpod) -> Settings:
    return make_settings(tmp_path, runpod_fake)


@pytest.fixture
async def core(settings: Settings) -> AsyncIterator[Core]:
    async with open_core(settings) as built:
        yield built
