"""The users of `bench.adapters`: a fake Slack workspace and Discord guild, and their commands.

Slack commands are signed POSTs to the bot's /slack/events, timed until the HTTP response (the
ack). Discord commands are INTERACTION_CREATEs on FakeDiscord's gateway, timed until the bot's
interaction callback (the defer) arrives. Each prompt names its command (`bench s12`, `bench d7`;
`sw`/`dw` for the warm-ups) and carries the job's queue and run times for FakeRunpod, so every
message, job row and Runpod job can be traced back to the command that caused it.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from bench.common import timed_prompt
from tests.discord.support import job_id_of
from tests.fakes.discord import FakeChannel, FakeDiscord, FakeGuild, FakeUser, SentInteraction
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_signing import SlackSigner, slash_command
from tests.slack.support import block_texts, button_ids, button_value

SIGNING_SECRET = "bench-signing-secret"
CHANNELS = 5  # per platform; users are spread over them
QUEUE_MEDIAN_S = 0.3
SPREAD = 0.5  # sigma of the log-normal draws: p99 is about 3.2x the median
ACK_LIMIT_S = 3.0  # Slack's and Discord's deadline for the first answer
SHOW, CANCEL = "job_show", "job_cancel"  # Slack card buttons that carry the job id
LABEL = re.compile(r"\bbench ([sd](?:\d+|w))\b")


def is_warm_up(label: str) -> bool:
    return label[1:] == "w"


class TimedDiscord(FakeDiscord):
    """FakeDiscord that notes when each interaction callback arrives (FakeDiscord keeps no time)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.callback_at: dict[int, float] = {}

    async def _callback(self, request: web.Request) -> web.Response:
        interaction = int(request.match_info["interaction_id"])
        self.callback_at.setdefault(interaction, time.monotonic())
        return await super()._callback(request)


@dataclass
class Sent:
    """One command as a user issued it; `ack_s` None means it was never acknowledged."""

    label: str
    at: float = 0.0
    ack_s: float | None = None
    status: str = "not sent"
    interaction: SentInteraction | None = None


@dataclass
class Seen:
    """What the user can see of one command on the platform."""

    job_ids: set[str] = field(default_factory=set)
    results: int = 0  # finished result messages
    files: int = 0  # files uploaded with them


@dataclass
class Platforms:
    """The fake Slack workspace and Discord guild, their users and channels, and what was sent."""

    slack: FakeSlack
    discord: TimedDiscord
    slack_users: list[str]
    discord_users: list[FakeUser]
    slack_channels: list[str]
    discord_channels: list[FakeChannel]
    slack_urls: list[str] = field(default_factory=list)  # one per worker; commands go round-robin
    sent: dict[str, Sent] = field(default_factory=dict)  # label -> command

    def of(self, platform: str, *, measured: bool = True) -> list[Sent]:
        return [
            s
            for label, s in self.sent.items()
            if label[0] == platform[0] and not (measured and is_warm_up(label))
        ]


def make_platforms(users: int) -> Platforms:
    channels = [FakeChannel(f"bench-{k}") for k in range(CHANNELS)]
    discord = TimedDiscord(guilds=[FakeGuild("Bench", channels=channels)])
    discord_users = [FakeUser(f"bench{k:03d}") for k in range(users)]
    for member in discord_users:
        discord.guild.add_member(member)
    slack = FakeSlack()
    slack_channels = [f"C0BENCH{k}" for k in range(CHANNELS)]
    for k, channel in enumerate(slack_channels):
        slack.add_channel(channel, f"bench-{k}")
    slack_users = [f"U0BENCH{k:03d}" for k in range(users)]
    for user_id in slack_users:
        slack.add_user(user_id, user_id.lower())
    return Platforms(slack, discord, slack_users, discord_users, slack_channels, channels)


# --- the users ----------------------------------------------------------------------------


class Users:
    """Sends each platform's commands; the k-th command comes from user k mod N, in channel k mod 5."""

    def __init__(self, p: Platforms, http: aiohttp.ClientSession, *, job_s: float, seed: int):
        self._p = p
        self._http = http
        self._signer = SlackSigner(SIGNING_SECRET)
        self._job_s = job_s
        self._seed = seed
        self._draws: dict[str, random.Random] = {}

    def prompt(self, label: str) -> str:
        """The same sequence of job times on both platforms."""
        rng = self._draws.setdefault(label[0], random.Random(self._seed))
        queue = min(rng.lognormvariate(math.log(QUEUE_MEDIAN_S), SPREAD), 10 * QUEUE_MEDIAN_S)
        run = min(rng.lognormvariate(math.log(self._job_s), SPREAD), 10 * self._job_s)
        return timed_prompt(label, queue, run)

    async def slack(self, k: int, label: str) -> None:
        p = self._p
        sent = p.sent[label] = Sent(label)
        user, channel = p.slack_users[k % len(p.slack_users)], p.slack_channels[k % CHANNELS]
        payload = slash_command(
            p.slack, "/imagine", self.prompt(label), user_id=user, channel_id=channel
        )
        body = urlencode(payload).encode()
        headers = self._signer.headers(body, content_type="application/x-www-form-urlencoded")
        sent.at = time.monotonic()
        try:
            url = p.slack_urls[k % len(p.slack_urls)]
            async with self._http.post(url, data=body, headers=headers) as response:
                await response.read()
                sent.status = str(response.status)
                sent.ack_s = time.monotonic() - sent.at if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            sent.status = type(exc).__name__

    async def discord(self, k: int, label: str) -> None:
        p = self._p
        sent = p.sent[label] = Sent(label)
        user, channel = p.discord_users[k % len(p.discord_users)], p.discord_channels[k % CHANNELS]
        try:
            sent.interaction = await p.discord.slash_command(
                "imagine", {"prompt": self.prompt(label)}, user=user, channel_id=channel.id
            )
        except (TimeoutError, ConnectionError) as exc:
            sent.status = type(exc).__name__
            return
        sent.at, sent.status = sent.interaction.issued_at, "sent"


async def issue(
    rate: float, duration: float, send: Callable[[int], Coroutine[Any, Any, None]]
) -> float:
    """`send(k)` for k = 0, 1, ... at `rate` per second for `duration` s, each in its own task,
    whatever the bot does; returns how late (s) the most delayed send started."""
    start, late = time.monotonic(), 0.0
    async with asyncio.TaskGroup() as group:
        for k in range(round(rate * duration)):
            delay = start + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(late, -delay)
            group.create_task(send(k))
    return late


def settle_discord_acks(p: Platforms) -> None:
    """Discord latencies and statuses, read from the fake once the callbacks are in."""
    for sent in p.of("discord", measured=False):
        if sent.interaction is None:
            continue
        callback = sent.interaction.callback
        arrived = p.discord.callback_at.get(sent.interaction.id)
        sent.status = "no callback" if callback is None else f"type {callback['type']}"
        if callback is not None and arrived is not None:
            sent.ack_s = arrived - sent.interaction.issued_at


def seen_in_slack(fake: FakeSlack) -> dict[str, Seen]:
    """Per command label: its job cards (a label twice would be a duplicate) and their files."""
    files = Counter((u.channel_id, u.thread_ts) for u in fake.uploads)
    seen: dict[str, Seen] = defaultdict(Seen)
    for message in fake.messages:
        if message.user != fake.bot_user_id or message.ephemeral_to or not message.blocks:
            continue
        texts = block_texts(message)
        found = LABEL.search(texts[0]) if texts else None
        buttons = button_ids(message)
        if found is None or not buttons & {SHOW, CANCEL}:
            continue
        entry = seen[found[1]]
        if SHOW in buttons:
            entry.job_ids.add(button_value(message, SHOW))
            entry.results += 1
            entry.files += files[(message.channel, message.ts)]
        else:
            entry.job_ids.add(button_value(message, CANCEL))
    return seen


def seen_in_discord(p: Platforms) -> dict[str, Seen]:
    """Per command label: result messages of its interaction (embed footer, not loading)."""
    by_interaction = defaultdict(list)
    for message in p.discord.messages.values():
        if message.interaction_id is not None:
            by_interaction[message.interaction_id].append(message)
    seen: dict[str, Seen] = defaultdict(Seen)
    for sent in p.of("discord", measured=False):
        if sent.interaction is None:
            continue
        entry = seen[sent.label]
        for message in by_interaction[sent.interaction.id]:
            if message.loading or not any(e.get("footer") for e in message.embeds):
                continue
            entry.job_ids.add(job_id_of(message))
            entry.results += 1
            entry.files += len(message.attachments)
    return seen


def private_replies(p: Platforms) -> int:
    """Ephemeral answers: refusals, errors and warnings the users got instead of results."""
    slack = sum(1 for m in p.slack.messages if m.ephemeral_to) + len(p.slack.response_posts)
    discord = sum(1 for m in p.discord.messages.values() if m.ephemeral)
    return slack + discord


def seen(p: Platforms) -> dict[str, Seen]:
    return seen_in_slack(p.slack) | seen_in_discord(p)


def all_seen(p: Platforms) -> bool:
    """True once every command that was accepted shows its result with a file."""
    accepted = [s.label for s in p.sent.values() if s.status in ("200", "sent")]
    shown = seen(p)
    return all(shown[label].files >= 1 for label in accepted)
