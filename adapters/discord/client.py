"""The Discord adapter's wiring: the discord.py client, its command tree, buttons and Delivery.

discord.py reads its REST base and gateway from two class attributes (`Route.BASE`,
`DiscordWebSocket.DEFAULT_GATEWAY`); `use_endpoints` sets them from settings so operators (and
tests, with the fake Discord) point the bot elsewhere the same way. Slash commands and buttons
need no privileged intent; guild and DM messages (replies that continue a conversation) are
asked for, Message Content and Server Members only when the operator turns them on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands

from adapters.discord import commands
from adapters.discord.admin import QuotaCommands
from adapters.discord.buttons import JobButton
from adapters.discord.context import (
    PLATFORM,
    identity_of,
    member_is_admin,
    report_error,
)
from adapters.discord.conversation import ConversationReplies
from adapters.discord.delivery import DiscordDelivery
from adapters.discord.handlers import JobHandlers
from adapters.discord.info import InfoCommands
from adapters.pacing import CardPacer
from bot import web as web_page
from bot.app import Core
from bot.commands import COMMANDS
from bot.config import DiscordSettings
from bot.delivery import ChannelRef
from bot.errors import ConfigError
from bot.ledger import Identity
from bot.tasks import TaskSet
from bot.web import Member

log = logging.getLogger(__name__)


# Every command (but /quota) for a server's install and a member's own (user install), in
# servers, the bot's DM and group DMs; a member's own install is charged to their personal pool.
INSTALLS = app_commands.AppInstallationType(guild=True, user=True)
CONTEXTS = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True)


def use_endpoints(settings: DiscordSettings) -> None:
    """Send discord.py's REST calls and gateway connection where the settings say."""
    discord.http.Route.BASE = settings.api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)


def intents(settings: DiscordSettings | None = None) -> discord.Intents:
    wanted = discord.Intents.none()
    wanted.guilds = True  # channels, roles and upload limits of the servers the bot is in
    wanted.guild_messages = True  # replies to /ask answers continue the conversation
    wanted.dm_messages = True  # in the bot's DM too (their text needs no Message Content)
    wanted.message_content = bool(settings and settings.message_content)
    wanted.members = bool(settings and settings.members_intent)  # GUILD_MEMBER_REMOVE
    return wanted


class _Hooks:
    """discord.py calls these on the client; they hand over to the adapter."""

    adapter: DiscordAdapter

    async def setup_hook(self) -> None:
        await self.adapter.setup()

    async def on_ready(self) -> None:
        await self.adapter.on_ready()

    async def on_resumed(self) -> None:
        self.adapter.core.readiness.connected(PLATFORM)

    async def on_disconnect(self) -> None:
        self.adapter.core.readiness.disconnected(PLATFORM, "gateway connection lost; reconnecting")

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.conversations.on_message(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        name = interaction.user.display_name
        await web_page.member_seen(self.adapter.core, identity_of(interaction), name)

    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        who = Identity(PLATFORM, str(payload.guild_id), str(payload.user.id))
        await web_page.member_left(self.adapter.core, who)


class BotClient(_Hooks, discord.Client):
    pass


class ShardedBotClient(_Hooks, discord.AutoShardedClient):
    pass


class DiscordAdapter:
    """Everything the Discord side of the bot is, built from the core."""

    def __init__(self, core: Core, *, guild_ready_timeout: float = 2.0) -> None:
        self.core = core
        self.settings = core.settings.discord
        options: dict[str, Any] = {
            "intents": intents(self.settings),
            "allowed_mentions": discord.AllowedMentions.none(),
            "max_messages": None,
            "member_cache_flags": discord.MemberCacheFlags.none(),
            "chunk_guilds_at_startup": False,
            "guild_ready_timeout": guild_ready_timeout,
            # Counts Discord's HTTP errors and 429s for /metrics.
            "http_trace": core.metrics.platform_trace(PLATFORM),
        }
        shards = self.settings.shards
        self.client: discord.Client
        if shards is None:
            self.client = BotClient(**options)
        else:
            count = None if shards == "auto" else shards
            if self.settings.shard_ids is not None:
                # Only these shards connect here; other processes run the rest.
                options["shard_ids"] = self.settings.shard_ids
            self.client = ShardedBotClient(shard_count=count, **options)
        self.client.adapter = self
        self.tree = app_commands.CommandTree(
            self.client, allowed_installs=INSTALLS, allowed_contexts=CONTEXTS
        )
        self.tree.error(self._on_command_error)
        self.jobs = JobHandlers(core, self.delivery)
        self.info = InfoCommands(core, self.delivery)
        self.quota = QuotaCommands(core)
        self.conversations = ConversationReplies(core, self.delivery, self.client)
        self.ready = asyncio.Event()  # set once jobs left by the previous run are resumed
        self.tasks = TaskSet()  # progress edits waiting for their turn (`adapters.pacing`)
        self._resumed = False

    def delivery(
        self, ref: ChannelRef, interaction: discord.Interaction | None = None
    ) -> DiscordDelivery:
        """A Delivery for a job: through `interaction` while it lasts, else channel messages.

        Registered as the platform's DeliveryFactory, so resumed jobs post channel messages.
        Made just after a command's defer: its "thinking..." counts as the message's first
        write, so the job's first progress edit waits a progress interval (`adapters.pacing`).
        """
        response = interaction.response.type if interaction is not None else None
        thinking = response is discord.InteractionResponseType.deferred_channel_message
        interval = self.core.settings.jobs.progress_interval_s
        pacer = CardPacer(interval_s=interval, tasks=self.tasks, opened=thinking)
        return DiscordDelivery(self.client, ref, pacer=pacer, interaction=interaction)

    async def run(self) -> None:
        """Connect and serve until cancelled; jobs left unfinished resume once connected."""
        if self.settings.token is None:
            raise ConfigError("discord.token: DISCORD_TOKEN is not set")
        use_endpoints(self.settings)
        self.core.jobs.register_platform(PLATFORM, self.delivery)
        self.core.web.register(PLATFORM, check=self.member_now, direct=self.delivery)
        async with self.client:
            try:
                await self.client.start(self.settings.token.get_secret_value())
            except discord.LoginFailure:
                raise ConfigError("discord.token: Discord refused the bot token") from None
            finally:
                await self.tasks.cancel_all()

    # --- discord.py hooks -----------------------------------------------------------------

    async def setup(self) -> None:
        self.client.add_dynamic_items(JobButton)
        for command in commands.job_commands(self.jobs.run, self.jobs.model_completer):
            self.tree.add_command(command)
        self.tree.add_command(commands.cost_group(self.jobs.estimate, self.jobs.model_completer))
        for command in self.info.commands():
            self.tree.add_command(command)
        self.tree.add_command(self.quota.group())
        await self.sync()

    async def sync(self) -> None:
        """Guild commands appear at once (for the configured guilds); global ones can take a
        while to reach every client."""
        if not self.settings.guilds:
            synced = await self.tree.sync()
            log.info("discord: %d commands synced globally", len(synced))
            return
        for guild_id in self.settings.guilds:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("discord: %d commands synced to guild %s", len(synced), guild_id)

    async def _on_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        command = interaction.command
        about_a_job = isinstance(command, app_commands.Command) and (
            (command.root_parent or command).name in COMMANDS
        )
        await report_error(interaction, error, about_a_job=about_a_job)

    async def on_button(self, interaction: discord.Interaction, action: str, job_id: str) -> None:
        await self.jobs.on_button(interaction, action, job_id)

    async def on_ready(self) -> None:
        user = self.client.user
        log.info("discord: connected as %s (%s)", user, user.id if user else "?")
        self.core.readiness.connected(PLATFORM)
        if self._resumed:
            return
        self._resumed = True
        if self.settings.admin_channel is not None:
            self.core.notices.register(PLATFORM, self._post_notice)
        try:
            count = await self.core.jobs.resume(PLATFORM)
            log.info("discord: resumed %d unfinished job(s)", count)
        finally:
            self.ready.set()

    async def member_now(self, identity: Identity) -> Member | None:
        """The web page's re-check: still in the server (None if not), admin now or not."""
        guild = self.client.get_guild(int(identity.workspace))
        if guild is None:
            raise LookupError(f"not in server {identity.workspace}")
        try:
            member = await guild.fetch_member(int(identity.user))
        except discord.NotFound:
            return None
        except discord.HTTPException as exc:
            raise LookupError(str(exc)) from exc
        return Member(member.display_name, member_is_admin(member, self.settings))

    async def _post_notice(self, text: str) -> None:
        """An operator notice in `discord.admin_channel`, pinging no one."""
        channel = self.client.get_partial_messageable(self.settings.admin_channel or 0)
        await channel.send(text, allowed_mentions=discord.AllowedMentions.none())


async def run(core: Core) -> None:
    """The `runpod_bot.adapters` entry point."""
    await DiscordAdapter(core).run()
