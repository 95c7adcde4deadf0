"""The config file, and the two settings `python -m bot models` reads without pydantic.

Importing pydantic takes longer than the whole `models` command may (docs/benchmarks.md, "Start-up
of the command line"), and listing the catalog needs only where the database is and the
operator's `[models.<id>]` tables. `catalog_settings` reads those from the file when nothing
else could change them; otherwise `bot.config.load_settings` decides, and words any error.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError
from bot.storage.sql import POSTGRES_SCHEMES, sqlite_path

if TYPE_CHECKING:
    from bot.config_settings import Settings

DEFAULT_CONFIG_PATH = Path("config.toml")
DEFAULT_DATABASE = Path("bot.db")
# `BOT_<SECTION>__<KEY>` (any case) sets a setting from the environment (bot/config.py).
ENV_PREFIX = "BOT_"
# Environment variables people already have, mapped onto settings paths.
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "RUNPOD_API_KEY": ("runpod", "api_key"),
    "DISCORD_TOKEN": ("discord", "token"),
    "SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "SLACK_SIGNING_SECRET": ("slack", "signing_secret"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
}


def config_path(explicit: str | Path | None = None) -> Path:
    return Path(explicit or os.environ.get("BOT_CONFIG") or DEFAULT_CONFIG_PATH)


def read_config_file(file: Path) -> dict[str, Any]:
    """The file's tables; none when it does not exist (defaults and environment only)."""
    if not file.exists():
        return {}
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc


def database_place(value: object) -> Path | str:
    """`storage.database`: a PostgreSQL DSN as given, else the SQLite file it names."""
    if isinstance(value, str) and value.startswith(POSTGRES_SCHEMES):
        return value
    if isinstance(value, str | Path):
        return sqlite_path(value)
    raise ValueError("storage.database must be a file path or a postgresql:// DSN")


@dataclass(frozen=True)
class CatalogSettings:
    """What listing the catalog reads: the database (models hidden there) and the overrides."""

    database: Path | str
    models: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, settings: Settings) -> CatalogSettings:
        return cls(settings.storage.database, settings.models)


def catalog_settings(path: str | Path | None = None) -> CatalogSettings:
    found = catalog_from_file(read_config_file(config_path(path)))
    if found is not None:
        return found
    from bot.config import load_settings  # pydantic: validates, and words what is wrong

    return CatalogSettings.of(load_settings(path))


def set_in_environment(*sections: str) -> bool:
    """Whether a `BOT_<SECTION>...` variable (any case) may set one of `sections`."""
    watched = tuple(ENV_PREFIX + section.upper() for section in sections)
    return any(name.upper().startswith(watched) for name in os.environ)


def catalog_from_file(data: Mapping[str, Any]) -> CatalogSettings | None:
    """The catalog's settings from the file's tables `data`; None when the environment sets
    storage or models, or the file holds what pydantic would have to judge (a database that is
    not text, models that are not tables)."""
    if set_in_environment("storage", "models"):
        return None
    storage, models = data.get("storage", {}), data.get("models", {})
    if not isinstance(storage, dict) or not isinstance(models, dict):
        return None
    database = storage.get("database", DEFAULT_DATABASE)
    if not isinstance(database, str | Path) or not all(
        isinstance(t, dict) for t in models.values()
    ):
        return None
    return CatalogSettings(database_place(database), models)
