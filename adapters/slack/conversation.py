"""Replies in the thread of an `/ask` answer: the next turn of that conversation.

A thread is a conversation's place (`bot.jobs.conversations`): the card's thread for `/ask`, the
mention's thread for `@bot ask`. A member's message there, with or without a mention, is their
turn, on their quota; `--new` starts a fresh conversation in the same thread.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from adapters.slack.context import Origin, SlackContext
from adapters.slack.launch import place_of, show_card
from adapters.slack.text import from_slack
from bot.jobs import COMMAND, Invocation

log = logging.getLogger(__name__)


async def conversation_at(ctx: SlackContext, origin: Origin) -> str | None:
    """The conversation the thread `origin` is in continues, if it is one."""
    if not origin.reply_thread:
        return None
    place = place_of(origin.channel, origin.reply_thread)
    return await ctx.core.jobs.conversations.at(origin.community.platform, origin.team, place)


async def take_turn(
    ctx: SlackContext,
    origin: Origin,
    conversation: str,
    text: str,
    files: list[Mapping[str, Any]],
) -> None:
    """Submit `text` as the next turn; errors become a private reply in the thread."""
    thread = origin.reply_thread
    assert thread is not None

    async def submit() -> None:
        jobs = ctx.core.jobs
        # images, for models taking them
        media = ctx.links.links_for("edit", files) if files else []
        turn = await jobs.conversations.next_turn(
            conversation, from_slack(text), place=place_of(origin.channel, thread), media=media
        )
        ref = origin.channel_ref(origin="mention", command=COMMAND, prompt=turn.thread.said)
        delivery = ctx.delivery(ref)
        identity = await ctx.people.identity(origin.team, origin.user)
        invocation = Invocation(
            turn.request, identity, ref, delivery, await ctx.where(origin), thread=turn.thread
        )
        submitted = await jobs.submit(invocation)
        await show_card(ctx, origin, submitted, delivery)

    await ctx.replies.outcome(origin.audience, f"/{COMMAND}", submit())
    await ctx.seen(origin)
