"""What every Slack handler works with, built once by the adapter, and where a request came from."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from slack_sdk.web.async_client import AsyncWebClient

from adapters.pacing import CardPacer
from adapters.slack.delivery import SlackDelivery
from adapters.slack.files import FileLinks
from adapters.slack.people import PLATFORM, People
from adapters.slack.reply import Audience, Replies
from adapters.slack.store import SlackStore
from adapters.slack.stream import StreamSupport
from bot import web as web_page
from bot.app import Core
from bot.config import SlackSettings
from bot.delivery import ChannelRef
from bot.jobs import Community
from bot.ledger import Identity
from bot.policy import Where
from bot.tasks import TaskSet

NAME_REFRESH_S = 24 * 3600  # a renamed member's new name, if no user_change told us sooner


@dataclass(frozen=True)
class Origin:
    """Who asked, in which team and channel, in which thread, and how to answer them privately.

    `thread` is where a job's messages go: a mention's thread, the thread of a clicked card;
    None for a slash command (its job posts a new parent message). `reply_thread` is where a
    private reply shows: the thread the user typed in, None for the channel itself.
    """

    team: str
    channel: str
    user: str
    thread: str | None = None
    response_url: str | None = None
    reply_thread: str | None = None
    received_at: float = field(default_factory=time.time)

    @property
    def audience(self) -> Audience:
        return Audience(
            channel=self.channel,
            user=self.user,
            thread=self.reply_thread,
            response_url=self.response_url,
            response_url_at=self.received_at,
        )

    @property
    def community(self) -> Community:
        """The workspace asking: only its own jobs can be looked up."""
        return Community(PLATFORM, self.team)

    def channel_ref(self, *, origin: str, command: str, prompt: str) -> ChannelRef:
        extra = {"origin": origin, "command": command, "prompt": prompt[:500]}
        if self.response_url:
            extra |= {"response_url": self.response_url, "response_url_at": str(self.received_at)}
        return ChannelRef(PLATFORM, self.team, self.channel, self.user, self.thread, extra=extra)


@dataclass
class SlackContext:
    core: Core
    settings: SlackSettings
    client: AsyncWebClient
    replies: Replies
    store: SlackStore
    people: People
    links: FileLinks
    tasks: TaskSet
    streaming: StreamSupport = field(default_factory=StreamSupport)

    def delivery(
        self, ref: ChannelRef, *, kind: type[SlackDelivery] = SlackDelivery
    ) -> SlackDelivery:
        """The DeliveryFactory registered with the core (also used for jobs after a restart);
        the web page's is `DirectDelivery`, whose `Route.DIRECT` posts the whole result."""
        return kind(
            client=self.client,
            store=self.store,
            replies=self.replies,
            ref=ref,
            pacer=CardPacer(
                interval_s=self.core.settings.jobs.progress_interval_s, tasks=self.tasks
            ),
            streaming=self.streaming,
        )

    async def seen(self, origin: Origin) -> None:
        """Name the member on the web page: users.info at most once per NAME_REFRESH_S per
        member (the store keeps when), shared with the admin check; never per command."""
        if not await self.store.due(f"name:{origin.team}:{origin.user}", NAME_REFRESH_S):
            return
        name = await self.people.name(origin.user)
        if name:
            who = Identity(PLATFORM, origin.team, origin.user)
            await web_page.member_seen(self.core, who, name)

    async def where(self, origin: Origin) -> Where:
        return Where(
            channel=origin.channel,
            is_dm=origin.channel.startswith("D"),
            nsfw_channel=origin.channel in self.settings.nsfw_channels,
            is_admin=await self.people.is_admin(origin.user),
        )
