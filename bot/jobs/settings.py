"""What the job engine reads of config.toml, chosen once by the composition root (bot/app.py).

The engine is handed these sections and values instead of the whole `Settings`, so what it
depends on is written in one place, and a setting it does not read cannot reach it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import DeliverySettings, JobSettings, PolicySettings, StorageSettings


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    jobs: JobSettings
    delivery: DeliverySettings
    storage: StorageSettings
    policy: PolicySettings
    # `quotas.personal.enabled`: members may run jobs outside a community, on their own pool.
    personal_use: bool
    # `runpod.base_url`, for "Show request"; `runpod.webhook_url`: where Runpod reports back.
    runpod_url: str
    webhook_url: str | None
    # `http.public_url`, else the webhook's: the base of the bot's signed links to results.
    links_url: str | None
