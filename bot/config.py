"""Settings: `config.toml` first, environment variables over it.

The usual names work (`RUNPOD_API_KEY`, `DISCORD_TOKEN`, `SLACK_BOT_TOKEN`, `SLACK_SIGNING_SECRET`,
`SLACK_APP_TOKEN`), and any setting can be given as `BOT_<SECTION>__<KEY>`, e.g.
`BOT_QUOTAS__DAILY_USD=2.50`. Every base URL is a setting so tests can point the bot at local fakes.
Secrets are `SecretStr`: they print as `**********` and are never logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.config_file import ENV_PREFIX, config_path, read_config_file
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

# The sections live in bot.config_sections; the rest of the code names them from here.
__all__ = [
    "ENV_ALIASES",
    "MAX_ADMIN_USD",
    "DeliverySettings",
    "DiscordSettings",
    "JobSettings",
    "PolicySettings",
    "QuotaLimits",
    "QuotaSettings",
    "ReconcileSettings",
    "Settings",
    "SlackSettings",
    "StorageSettings",
    "WorkerSettings",
    "config_path",
    "load_settings",
]

# Environment variables people already have, mapped onto settings paths.
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "RUNPOD_API_KEY": ("runpod", "api_key"),
    "DISCORD_TOKEN": ("discord", "token"),
    "SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "SLACK_SIGNING_SECRET": ("slack", "signing_secret"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
}


class Settings(BaseSettings):
    """Everything the bot reads at start; built once by `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log: LogSettings = LogSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    metrics: MetricsSettings = MetricsSettings()
    runpod: RunpodSettings = RunpodSettings()
    storage: StorageSettings = StorageSettings()
    discord: DiscordSettings = DiscordSettings()
    slack: SlackSettings = SlackSettings()
    quotas: QuotaSettings = QuotaSettings()
    jobs: JobSettings = JobSettings()
    http: HttpSettings = HttpSettings()
    web: WebSettings = WebSettings()
    delivery: DeliverySettings = DeliverySettings()
    workers: WorkerSettings = WorkerSettings()
    policy: PolicySettings = PolicySettings()
    security: SecuritySettings = SecuritySettings()
    # Catalog additions and overrides, keyed by model id (see config.example.toml).
    models: dict[str, dict[str, Any]] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: BOT_* env, then the usual names, then the file (passed as init).
        return env_settings, _AliasEnvSource(settings_cls), init_settings

    def enabled_adapters(self) -> list[str]:
        adapters = []
        if self.discord.token is not None:
            adapters.append("discord")
        if self.slack.bot_token is not None and (
            self.slack.app_token is not None or self.slack.signing_secret is not None
        ):
            adapters.append("slack")
        return adapters


class _AliasEnvSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, dict[str, str]] = {}
        for name, (section, key) in ENV_ALIASES.items():
            if os.environ.get(name):
                values.setdefault(section, {})[key] = os.environ[name]
        return values


def load_settings(path: str | Path | None = None) -> Settings:
    """Read settings; a missing file is fine, a bad value raises ConfigError naming the key."""
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
