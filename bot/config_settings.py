"""`Settings`: every section together, read by pydantic-settings from the environment and the file.

Name it from `bot.config`, which imports this module only when `Settings` is first used:
pydantic-settings takes longer to import than `python -m bot cost` may take in all
(docs/benchmarks.md, "Start-up of the command line").
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.config_file import ENV_ALIASES, ENV_PREFIX
from bot.config_sections import (
    DeliverySettings,
    DiscordSettings,
    HttpSettings,
    JobSettings,
    LogSettings,
    MetricsSettings,
    PolicySettings,
    QuotaSettings,
    ReconcileSettings,
    RunpodSettings,
    SecuritySettings,
    SlackSettings,
    StorageSettings,
    WebSettings,
    WorkerSettings,
)


class Settings(BaseSettings):
    """Everything the bot reads at start; built once by `bot.config.load_settings`."""

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
