"""The sections of `config.toml`: one pydantic model each, with its defaults and its checks.

Those a quote reads take their fields from bot/config_fields.py, where they are read without pydantic.

`bot.config` puts them together into `Settings` and loads them; import them from there.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from bot.config_fields import (
    ChannelFields,
    JobFields,
    LimitFields,
    PersonalFields,
    PolicyFields,
    QuotaFields,
)
from bot.config_file import DEFAULT_DATABASE, database_place

Usd = Decimal


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class RunpodSettings(Section):
    api_key: SecretStr | None = None
    base_url: str = "https://api.runpod.ai/v2"
    # Runpod's REST API (account, billing), a different host from the endpoints' API.
    rest_url: str = "https://api.runpod.io/v2"
    # Public URL prefix at which Runpod can reach this bot's HTTP listener (e.g.
    # "https://bot.example.com"). When set, jobs are pushed to us instead of polled.
    webhook_url: str | None = None
    request_timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=10)
    # First retry of a Runpod call (jittered) or of a result download waits about this long,
    # doubling per attempt.
    backoff_base_s: float = Field(default=0.5, gt=0)


class StorageSettings(Section):
    # An SQLite file (a path or `sqlite:///path`), or a PostgreSQL DSN `postgresql://...`.
    database: Path | str = DEFAULT_DATABASE
    # Keep a copy of every result here; also enables the identical-request cache.
    media_dir: Path | None = None
    # Results are written to `spool/` next to the database before they are charged, so a
    # restart or an expired Runpod URL cannot lose a paid result. Delivered ones are removed,
    # oldest first, once the folder is over this size (down to nine tenths of it; between two
    # such trims it may pass this by a tenth).
    spool_max_mb: float = Field(default=1024.0, gt=0)
    # Where that folder is; by default next to an SQLite file, or `./spool` beside PostgreSQL.
    spool: Path | None = None

    @field_validator("database", mode="before")
    @classmethod
    def _database_place(cls, value: object) -> Path | str:
        return database_place(value)

    # Files members attach (/edit, /video, /transcribe) are kept in `inputs/` next to the
    # database (the working directory beside PostgreSQL), so a Reroll works after the platform's attachment link expired. Removed after
    # this many days, and oldest first above this size.
    inputs_keep_days: float = Field(default=30.0, gt=0)
    inputs_max_mb: float = Field(default=1024.0, gt=0)
    # How long a job waits for a store gone away (server restart, network cut, file locked)
    # before it stops in this process, to be taken over when the store is back (bot/storage/outage.py).
    outage_s: float = Field(default=300.0, gt=0)

    @property
    def spool_dir(self) -> Path:
        """`spool`, else next to an SQLite file, else in the working directory."""
        if self.spool is not None:
            return self.spool
        if isinstance(self.database, Path):
            return self.database.parent / "spool"
        return Path("spool")

    @property
    def inputs_dir(self) -> Path:
        if isinstance(self.database, Path):
            return self.database.parent / "inputs"
        return self.spool_dir.parent / "inputs"


class DiscordSettings(Section):
    token: SecretStr | None = None
    api_base: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg/"
    # Sync commands to these guilds (instant); empty means global commands.
    guilds: list[int] = []
    # Use AutoShardedClient with this many shards ("auto" lets Discord decide).
    shards: int | Literal["auto"] | None = None
    # Which of the `shards` this process connects (docs/scaling.md): split them across processes.
    shard_ids: list[int] | None = None
    admin_role: str | None = None
    # Channel id where operator notices go (the ledger drifting from Runpod's bill).
    admin_channel: int | None = None
    # Ask for the privileged Message Content intent (switch it on in the Developer Portal too):
    # then any message in a conversation's thread is a turn, not only those mentioning the bot.
    message_content: bool = False
    # Ask for the privileged Server Members intent: a member who leaves the server loses their
    # web page sessions at once (without it, at the page's next re-check; docs/web.md).
    members_intent: bool = False

    @model_validator(mode="after")
    def _shard_ids_within_count(self) -> DiscordSettings:
        if self.shard_ids is None:
            return self
        if not isinstance(self.shards, int):
            raise ValueError("shard_ids needs shards set to the total number of shards")
        if not self.shard_ids:
            raise ValueError("shard_ids must name at least one shard")
        outside = sorted({i for i in self.shard_ids if not 0 <= i < self.shards})
        if outside:
            raise ValueError(
                f"shard_ids {outside} are outside 0..{self.shards - 1} (shards = {self.shards})"
            )
        if len(set(self.shard_ids)) != len(self.shard_ids):
            raise ValueError("shard_ids names a shard twice")
        return self


class SlackSettings(Section):
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    api_url: str = "https://slack.com/api/"
    port: int = Field(default=3000, ge=0, le=65535)
    admin_users: list[str] = []
    # Where HTTP mode listens (POST /slack/events; also the file links below).
    host: str = "0.0.0.0"
    # Public base URL of this listener (e.g. "https://bot.example.com"). When set, files shared
    # with a mention are handed to Runpod as short-lived signed links served from here.
    public_url: str | None = None
    # Role name -> Slack user ids, for quota tiers (user group handles work as roles too).
    roles: dict[str, list[str]] = {}
    # Channel ids where models marked NSFW may run (Slack has no age-restricted channels).
    nsfw_channels: list[str] = []
    # Channel id where operator notices go (the ledger drifting from Runpod's bill).
    admin_channel: str | None = None


class QuotaLimits(Section, LimitFields):
    """Spend limits for one scope; `None` means no limit for that period."""


class PersonalQuota(QuotaLimits, PersonalFields):
    """The pool of a member using the app outside a server that installed it (Discord user
    installs: DMs, group DMs, other servers). Off unless the operator turns it on."""


class QuotaSettings(Section, QuotaFields):
    workspace: QuotaLimits = QuotaLimits.model_validate({"monthly_usd": Decimal("100.00")})
    personal: PersonalQuota = PersonalQuota()
    roles: dict[str, QuotaLimits] = {}

    def user_limits(self) -> QuotaLimits:
        limits = {"daily_usd": self.daily_usd, "weekly_usd": self.weekly_usd}
        return QuotaLimits.model_validate({**limits, "monthly_usd": self.monthly_usd})


class JobSettings(Section, JobFields):
    pass


class DeliverySettings(Section):
    """How long and how often a paid result is offered to the platform before giving up."""

    # Retries wait `retry_first_s`, doubling up to `retry_max_s`, across restarts, until
    # `horizon_s` after the job finished; then the job is `undeliverable` (still retried every
    # `retry_max_s`, and kept for /show).
    horizon_s: float = Field(default=3600.0, gt=0)
    retry_first_s: float = Field(default=2.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)
    # One try on one route (edit, new message, DM, link) is abandoned after this long.
    attempt_timeout_s: float = Field(default=120.0, gt=0)


class WorkerSettings(Section):
    """Leases: how several processes on one database share its jobs (docs/scaling.md).

    Each process renews its lease every `heartbeat_s`; a job whose owner has not renewed for
    `lease_s` is taken over by another process. `lease_s` must leave room for a few missed
    heartbeats.
    """

    heartbeat_s: float = Field(default=5.0, gt=0)
    lease_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _room_for_missed_beats(self) -> WorkerSettings:
        if self.lease_s < 2 * self.heartbeat_s:
            raise ValueError("lease_s must be at least twice heartbeat_s")
        return self


class HttpSettings(Section):
    """The bot's own small HTTP listener (Runpod webhooks, links to results)."""

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    # Public base URL of this listener (e.g. "https://bot.example.com"); when set, a result the
    # platform keeps refusing is offered as a signed link served from here. Defaults to
    # runpod.webhook_url.
    public_url: str | None = None
    # GET /health/ready reports Runpod not ready when it has not answered for this long (and
    # does not answer a /health call made then).
    ready_runpod_minutes: float = Field(default=5.0, gt=0)


class WebSettings(Section):
    """The community web page (bot/web/), served by the `[http]` listener under /web."""

    # Public base URL of the listener as members' browsers reach it ("https://bot.example.com");
    # without it `/web` says how to enable the page. https makes the session cookie Secure.
    public_url: str | None = None
    # How long a sign-in link from `/web` works (once), and how long a session lasts.
    link_minutes: float = Field(default=10.0, gt=0, le=60)
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Who runs the bot and pays Runpod's bill ("discord:GUILD:USER", "slack:TEAM:USER"): when
    # also an admin of the workspace they sign in to, their admin page shows the reconciliation
    # with Runpod's bill, which covers every workspace on the API key.
    operators: list[str] = Field(default_factory=list)

    @field_validator("operators")
    @classmethod
    def _member_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if len(key.split(":")) != 3 or not all(key.split(":")):
                raise ValueError(f"{key!r} is not a member key like discord:GUILD:USER")
        return keys


class LogSettings(Section):
    # "human": one readable line per record; "json": one JSON object per line, for log shippers.
    format: Literal["human", "json"] = "human"
    # Prompts are never logged at INFO or above unless this is true.
    include_prompts: bool = False


class ReconcileSettings(Section):
    """The periodic comparison of the ledger's charges with Runpod's Public Endpoint bill."""

    # Hours between checks; 0 turns the check off.
    interval_hours: float = Field(default=0.0, ge=0)
    # A day whose difference exceeds this is logged at WARNING.
    threshold_usd: Usd = Field(default=Decimal("1.00"), ge=0)
    # Differences up to this are "equal" (Runpod's daily records are rounded).
    tolerance_usd: Usd = Field(default=Decimal("0.01"), ge=0)
    # How many UTC days back each check compares (today included).
    days: int = Field(default=2, ge=1, le=31)


class MetricsSettings(Section):
    """Prometheus metrics at `GET /metrics` on the [http] listener (docs/operations.md)."""

    # Label charged/released USD with the workspace too; off by default to bound cardinality.
    per_workspace: bool = False


class ChannelPolicy(Section, ChannelFields):
    pass


class PolicySettings(Section, PolicyFields):
    pass


class SecuritySettings(Section):
    # Download results from loopback, private, link-local and reserved addresses too. Off by
    # default: a result URL (or a redirect) naming one would reach into the bot's own network.
    # Private deployments whose media host is on the LAN, and local tests, turn it on.
    allow_private_urls: bool = False
