"""Replies to an `/ask` answer: the next turn of that conversation (`bot.jobs.conversations`).

A member continues a conversation by replying to one of its answers, or by writing in a thread
opened on the first answer (Discord gives a thread on a message that message's id, which is
the conversation's place). The turn is theirs, on their quota, under the channel's policy.
Without the privileged Message Content intent Discord sends a message's text only when it
mentions the bot; a reply pings the bot by default, so replies work, and in a thread members
mention the bot (or the operator turns on `discord.message_content`).

In the member's DM with the bot every message's text arrives (Discord's documented exception),
and a reply there is charged to the pool the conversation's first turn used: "dm" under a
server's install, the member's personal pool under their own (`context.pool`). The bot is in
no group DM, so nothing said there reaches it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import discord

from adapters.discord.context import APOLOGY, PLATFORM, pool, with_charge_note
from adapters.discord.delivery import DiscordDelivery
from bot.app import Core
from bot.config import DiscordSettings
from bot.delivery import ChannelRef
from bot.errors import BotError
from bot.jobs import Invocation
from bot.ledger import Identity
from bot.policy import Where

log = logging.getLogger(__name__)

DeliveryFor = Callable[[ChannelRef, discord.Interaction | None], DiscordDelivery]
_JOB_FOOTER = re.compile(r"^job ([0-9a-f]{12})$")
NO_PINGS = discord.AllowedMentions.none()


@dataclass(frozen=True)
class Found:
    """A conversation a message continues; `place` where it continues it (a thread), and the
    workspace its turns are charged to."""

    conversation: str
    place: str | None
    workspace: str


class ConversationReplies:
    def __init__(self, core: Core, delivery_for: DeliveryFor, client: discord.Client) -> None:
        self._core = core
        self._settings: DiscordSettings = core.settings.discord
        self._delivery_for = delivery_for
        self._client = client

    async def on_message(self, message: discord.Message) -> None:
        """A member's message: the next turn if it continues a conversation, else nothing."""
        if message.author.bot or self._client.user is None:
            return
        found = await self._conversation_of(message)
        if found is None:
            return
        text = re.sub(rf"<@!?{self._client.user.id}>", " ", message.content).strip()
        if not text:
            return  # nothing we may read (no Message Content intent and no mention)
        try:
            await self._take_turn(message, found, text)
        except BotError as exc:
            await self._answer(message, with_charge_note(exc.message))
        except Exception:
            log.exception("discord: a conversation turn failed")
            await self._answer(message, APOLOGY)

    async def _take_turn(self, message: discord.Message, found: Found, text: str) -> None:
        jobs = self._core.jobs
        images = [a.url for a in message.attachments if (a.content_type or "").startswith("image/")]
        turn = await jobs.conversations.next_turn(
            found.conversation, text, place=found.place, media=images
        )
        guild = message.guild
        ref = ChannelRef(
            PLATFORM,
            found.workspace,
            str(message.channel.id),
            str(message.author.id),
            extra={"upload_limit": str(guild.filesize_limit)} if guild else {},
        )
        identity = _identity(message, found.workspace)
        invocation = Invocation(
            turn.request,
            identity,
            ref,
            self._delivery_for(ref, None),
            self._where(message, personal=identity.is_personal),
            thread=turn.thread,
        )
        submitted = await jobs.submit(invocation)
        log.info(
            "discord: turn by %s in %s -> job %s",
            message.author.id,
            message.channel.id,
            submitted.job_id,
        )

    async def _conversation_of(self, message: discord.Message) -> Found | None:
        """The conversation this message continues, if any, and where it is charged: its
        server, or in the bot's DM whichever pool the conversation's turns used."""
        if message.guild is not None:
            return await self._found_in(str(message.guild.id), message)
        author = str(message.author.id)
        for personal in (False, True):
            found = await self._found_in(pool(author, None, personal=personal), message)
            if found is not None:
                return found
        return None

    async def _found_in(self, workspace: str, message: discord.Message) -> Found | None:
        conversations = self._core.jobs.conversations
        here = str(message.channel.id)
        in_thread = await conversations.at(PLATFORM, workspace, here)
        if in_thread is not None:
            return Found(in_thread, here, workspace)
        reference = message.reference
        if reference is None or reference.message_id is None:
            return None
        answered = await conversations.at(PLATFORM, workspace, str(reference.message_id))
        if answered is not None:
            return Found(answered, None, workspace)
        job_id = self._job_of(reference.resolved)
        if job_id is None:
            return None
        of_job = await conversations.of_job(PLATFORM, workspace, job_id)
        return None if of_job is None else Found(of_job, None, workspace)

    def _job_of(self, replied: object) -> str | None:
        """The job a message of ours answered (its result embed's footer names it)."""
        me = self._client.user
        if not isinstance(replied, discord.Message) or me is None or replied.author.id != me.id:
            return None
        for embed in replied.embeds:
            match = _JOB_FOOTER.match(embed.footer.text or "")
            if match:
                return match[1]
        return None

    def _where(self, message: discord.Message, *, personal: bool) -> Where:
        channel = message.channel
        ruled_by = channel.parent_id if isinstance(channel, discord.Thread) else channel.id
        is_nsfw = getattr(channel, "is_nsfw", None)
        return Where(
            channel=str(ruled_by),
            is_dm=message.guild is None,
            nsfw_channel=bool(is_nsfw()) if callable(is_nsfw) else False,
            is_admin=_is_admin(message.author, self._settings),
            personal=personal,
        )

    async def _answer(self, message: discord.Message, text: str) -> None:
        try:
            await message.reply(text, allowed_mentions=NO_PINGS, mention_author=False)
        except discord.HTTPException as exc:
            log.warning("could not tell user %s: %s", message.author.id, exc)


def _identity(message: discord.Message, workspace: str) -> Identity:
    """The member in `workspace`, with their role ids and names there (none in a DM)."""
    roles: set[str] = set()
    if isinstance(message.author, discord.Member):
        for role in message.author.roles:
            if not role.is_default():
                roles.update((str(role.id), role.name))
    return Identity(PLATFORM, workspace, str(message.author.id), roles=frozenset(roles))


def _is_admin(author: discord.User | discord.Member, settings: DiscordSettings) -> bool:
    if not isinstance(author, discord.Member):
        return False
    permissions = author.guild_permissions
    if permissions.manage_guild or permissions.administrator:
        return True
    wanted = settings.admin_role
    return wanted is not None and any(wanted in (str(r.id), r.name) for r in author.roles)
