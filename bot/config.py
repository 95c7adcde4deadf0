"""Settings: `config.toml` first, environment variables over it.

The usual names work (`RUNPOD_API_KEY`, `DISCORD_TOKEN`, `SLACK_BOT_TOKEN`, `SLACK_SIGNING_SECRET`,
`SLACK_APP_TOKEN`), and any setting can be given as `BOT_<SECTION>__<KEY>`, e.g.
`BOT_QUOTAS__DAILY_USD=2.50`. Every base URL is a setting so tests can point the bot at local fakes.
Secrets are `SecretStr`: they print as `**********` and are never logged.

`Settings` (bot/config_settings.py) is imported when first named: pydantic-settings is slow to
import, and `python -m bot cost` reads its few sections without it (`quote_settings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bot.config_file import (
    ENV_ALIASES,
    CatalogSettings,
    catalog_from_file,
    config_path,
    read_config_file,
    set_in_environment,
)
from bot.config_sections import (
    MAX_ADMIN_USD,
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
from bot.errors import ConfigError

if TYPE_CHECKING:
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
    """`bot.config.Settings`, imported from bot/config_settings.py when first named."""
    if name != "Settings":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from bot.config_settings import Settings

    return Settings


def load_settings(path: str | Path | None = None) -> Settings:
    """Read settings; a missing file is fine, a bad value raises ConfigError naming the key."""
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
    """What a quote reads (`python -m bot cost`): the catalog's settings and three sections."""

    catalog: CatalogSettings
    jobs: JobSettings
    policy: PolicySettings
    quotas: QuotaSettings


_QUOTE_SECTIONS = ("jobs", "policy", "quotas")


def quote_settings(path: str | Path | None = None) -> QuoteSettings:
    """The sections a quote reads: validated alone when only the file sets them (the other
    sections are not judged); otherwise, or when one is invalid, `load_settings` decides and
    words the error as the bot does."""
    found = _quote_sections_alone(path)
    if found is not None:
        return found
    settings = load_settings(path)
    return QuoteSettings(
        CatalogSettings.of(settings), settings.jobs, settings.policy, settings.quotas
    )


def _quote_sections_alone(path: str | Path | None) -> QuoteSettings | None:
    if set_in_environment(*_QUOTE_SECTIONS):
        return None
    data = read_config_file(config_path(path))  # read once, for the catalog's settings too
    catalog = catalog_from_file(data)
    jobs, policy, quotas = (data.get(name, {}) for name in _QUOTE_SECTIONS)
    if catalog is None or not all(isinstance(table, dict) for table in (jobs, policy, quotas)):
        return None
    try:
        return QuoteSettings(
            catalog,
            JobSettings(**jobs),
            PolicySettings(**policy),
            QuotaSettings(**quotas),
        )
    except ValidationError:
        return None
