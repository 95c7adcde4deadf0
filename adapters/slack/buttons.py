"""The buttons on job cards: Reroll, Variations, Cancel, Show request, Start fresh (an answer's
conversation), and Run it / Cancel.

Each button's `value` is the job id and everything else comes from SQLite, so buttons on cards
posted before a restart keep working. A reroll runs in the same thread, paid by whoever clicked.
"""

from __future__ import annotations

import logging
from typing import Any

from adapters.slack import blocks
from adapters.slack.context import Origin, SlackContext
from adapters.slack.info import MAX_REPLY
from adapters.slack.launch import show_card
from adapters.slack.reply import Audience
from adapters.slack.text import code_block, escape
from bot.errors import InvalidRequest
from bot.jobs import UNKNOWN_JOB, Invocation

log = logging.getLogger(__name__)


class Buttons:
    def __init__(self, ctx: SlackContext) -> None:
        self._ctx = ctx

    async def click(self, body: dict[str, Any]) -> None:
        """Handle one click; never raises (errors become an ephemeral reply to the clicker)."""
        action = body["actions"][0]
        action_id, job_id = str(action.get("action_id")), str(action.get("value", ""))
        origin = origin_of(body)
        log.info("slack %s on job %s by %s", action_id, job_id, origin.user)
        work = self._dispatch(action_id, job_id, origin, body)
        await self._ctx.replies.outcome(_clicker(body, origin), action_id, work)
        await self._ctx.seen(origin)

    async def _dispatch(
        self, action_id: str, job_id: str, origin: Origin, body: dict[str, Any]
    ) -> str | None:
        ctx = self._ctx
        jobs = ctx.core.jobs
        is_admin = await ctx.people.is_admin(origin.user)
        if action_id in (blocks.REROLL, blocks.VARIATIONS):
            mode = "reroll" if action_id == blocks.REROLL else "variations"
            await self._rerun(job_id, mode, origin)
            return None
        if action_id == blocks.CANCEL:
            return await jobs.cancel(job_id, origin.community, user=origin.user, is_admin=is_admin)
        if action_id == blocks.SHOW:
            call = await jobs.show_request(job_id, origin.community)
            return f"The Runpod API call for job `{job_id}`:\n" + code_block(call, MAX_REPLY - 60)
        if action_id == blocks.CONFIRM:
            await self._confirm(job_id, origin)
            return None
        if action_id == blocks.FRESH:
            community = origin.community
            return await jobs.conversations.close(community.platform, community.workspace, job_id)
        if action_id == blocks.DECLINE:
            said = await jobs.cancel(job_id, origin.community, user=origin.user, is_admin=is_admin)
            await self._replace_question(origin, said)
            return None
        raise InvalidRequest("That button is not one I know.")

    async def _rerun(self, job_id: str, mode: str, origin: Origin) -> None:
        ctx = self._ctx
        request = await ctx.core.jobs.rerun_request(job_id, origin.community, mode=mode)
        identity = await ctx.people.identity(origin.team, origin.user)
        ref = origin.channel_ref(origin=mode, command=request.command, prompt=request.prompt)
        delivery = ctx.delivery(ref)
        invocation = Invocation(request, identity, ref, delivery, await ctx.where(origin))
        submitted = await ctx.core.jobs.submit(invocation)
        await show_card(ctx, origin, submitted, delivery)

    async def _confirm(self, job_id: str, origin: Origin) -> None:
        ctx = self._ctx
        job = await ctx.core.jobs.job(job_id, origin.community)
        if job is None:
            raise InvalidRequest(UNKNOWN_JOB)
        delivery = ctx.delivery(job.channel)
        roles = await ctx.people.roles(origin.user)
        submitted = await ctx.core.jobs.confirm(
            job_id, origin.community, user=origin.user, roles=roles, delivery=delivery
        )
        await self._replace_question(origin, "Confirmed; it is running.")
        await show_card(ctx, origin, submitted, delivery)

    async def _replace_question(self, origin: Origin, text: str) -> None:
        """Swap the (ephemeral) confirmation for its outcome, so its buttons can't be reused."""
        if origin.response_url:
            await self._ctx.replies.respond(
                origin.response_url, replace_original=True, text=escape(text)
            )


def origin_of(body: dict[str, Any]) -> Origin:
    """Where a click happened; later messages go into the clicked card's thread."""
    container = body.get("container") or {}
    channel = str((body.get("channel") or {}).get("id") or container.get("channel_id"))
    user = body["user"]
    team = str((body.get("team") or {}).get("id") or user.get("team_id"))
    thread = container.get("thread_ts") or container.get("message_ts")
    return Origin(
        team=team,
        channel=channel,
        user=str(user["id"]),
        thread=str(thread) if thread else None,
        response_url=body.get("response_url"),
    )


def _clicker(body: dict[str, Any], origin: Origin) -> Audience:
    """Replies to a click go to the clicker alone, next to the card (never replacing it)."""
    thread = (body.get("container") or {}).get("thread_ts")
    return Audience(channel=origin.channel, user=origin.user, thread=thread)
