"""Settings: `config.toml` first, environment variables over it.

The usual names work (`RUNPOD_API_KEY`, `DISCORD_TOKEN`, `SLACK_BOT_TOKEN`, `SLACK_SIGNING_SECRET`,
`SLACK_APP_TOKEN`), and any setting can be given as `BOT_<SECTION>__<KEY>`, e.g.
`BOT_QUOTAS__DAILY_USD=2.50`. Every base URL is a setting so tests can point the bot at local fakes.
Secrets are `SecretStr`: they print as `**********` and are never logged.

`Settings` (bot/config_settings.py) and the sections (bot/config_sections.py) are imported when
first named: pydantic is slow to import, and `python -m bot cost` reads its few sections without
it when it can (`quote_settings`, bot/config_fields.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config_fields import (
    MAX_ADMIN_USD,
    JobFields,
    PolicyFields,
    QuotaFields,
    read_section,
)
from bot.config_file import (
    ENV_ALIASES,
    CatalogSettings,
    catalog_from_file,
    config_path,
    read_config_file,
    set_in_environment,
)
from bot.errors import ConfigError
from bot.storage.sql import exists

if TYPE_CHECKING:
    from pydantic import ValidationError

    from bot.config_sections import (
        DeliverySettings,
        DiscordSettings,
        HttpSettings,
        JobSettings,
        LogSettings,
        MetricsSettings,
        PolicySettings,
        QuotaLimits,
        QuotaSettings,
        ReconcileSettings,
        RunpodSettings,
        SecuritySettings,
        SlackSettings,
        StorageSettings,
        WebSettings,
        WorkerSettings,
    )
    from bot.config_settings import Settings

# The sections live in bot.config_sections; the rest of the code names them from here.
__all__ = [
    "ENV_ALIASES",
    "MAX_ADMIN_USD",
    "DeliverySettings",
    "DiscordSettings",
    "HttpSettings",
    "JobSettings",
    "LogSettings",
    "MetricsSettings",
    "PolicySettings",
    "QuotaLimits",
    "QuotaSettings",
    "QuoteSettings",
    "ReconcileSettings",
    "RunpodSettings",
    "SecuritySettings",
    "Settings",
    "SlackSettings",
    "StorageSettings",
    "WebSettings",
    "WorkerSettings",
    "config_path",
    "load_settings",
    "quote_settings",
]


def __getattr__(name: str) -> Any:
    """`Settings` and the sections, imported when first named: they import pydantic."""
    if name == "Settings":
        from bot.config_settings import Settings

        return Settings
    if name in __all__:
        from bot import config_sections

        return getattr(config_sections, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_settings(path: str | Path | None = None) -> Settings:
    """Read settings; a missing file is fine, a bad value raises ConfigError naming the key."""
    from pydantic import ValidationError

    from bot.config_settings import Settings

    data = read_config_file(config_path(path))
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(root)"
        # Never echo the rejected value: it may be a secret.
        lines.append(f"{key}: {err['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


@dataclass(frozen=True)
class QuoteSettings:
    """What a quote reads (`python -m bot cost`): the catalog's settings and three sections.

    `quotas` is None when there is no database, so no ledger to read a member's standing from:
    they were checked all the same.
    """

    catalog: CatalogSettings
    jobs: JobFields
    policy: PolicyFields
    quotas: QuotaSettings | None


_QUOTE_SECTIONS = ("jobs", "policy", "quotas")


def quote_settings(path: str | Path | None = None) -> QuoteSettings:
    """The sections a quote reads: from the file alone when only the file sets them, without
    pydantic when it would take them as they are; otherwise `load_settings` decides, and words
    any error as the bot does."""
    found = _quote_sections_alone(path)
    if found is not None:
        return found
    settings = load_settings(path)
    catalog = CatalogSettings.of(settings)
    quotas = settings.quotas if exists(catalog.database) else None
    return QuoteSettings(catalog, settings.jobs, settings.policy, quotas)


def _quote_sections_alone(path: str | Path | None) -> QuoteSettings | None:
    """The sections read from the file alone (the other sections are not judged); None when
    the environment may set one of them, or one is invalid (`load_settings` words the error)."""
    if set_in_environment(*_QUOTE_SECTIONS):
        return None
    data = read_config_file(config_path(path))  # read once, for the catalog's settings too
    catalog = catalog_from_file(data)
    if catalog is None:
        return None
    jobs, policy, quotas = (data.get(name, {}) for name in _QUOTE_SECTIONS)
    ledger = exists(catalog.database)
    plain = None if ledger else _read_plainly(catalog, jobs, policy, quotas)
    return plain or _read_by_pydantic(catalog, jobs, policy, quotas, ledger=ledger)


def _read_plainly(
    catalog: CatalogSettings, jobs: Any, policy: Any, quotas: Any
) -> QuoteSettings | None:
    """Without pydantic, when it would take the tables as they are. There is no ledger: the
    quotas are checked, not kept (a ledger reads pydantic's `QuotaSettings`)."""
    plain_jobs, plain_policy = read_section(JobFields, jobs), read_section(PolicyFields, policy)
    if plain_jobs is None or plain_policy is None or read_section(QuotaFields, quotas) is None:
        return None
    return QuoteSettings(catalog, plain_jobs, plain_policy, None)


def _read_by_pydantic(
    catalog: CatalogSettings, jobs: Any, policy: Any, quotas: Any, *, ledger: bool
) -> QuoteSettings | None:
    from pydantic import ValidationError

    from bot.config_sections import JobSettings, PolicySettings, QuotaSettings

    if not all(isinstance(table, dict) for table in (jobs, policy, quotas)):
        return None
    try:
        checked = JobSettings(**jobs), PolicySettings(**policy), QuotaSettings(**quotas)
    except ValidationError:
        return None
    return QuoteSettings(catalog, checked[0], checked[1], checked[2] if ledger else None)
