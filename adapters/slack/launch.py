"""Starting a job from Slack: text and files -> a core request -> submitted -> its card posted.

Shared by slash commands, mentions and the Reroll / Variations / Confirm buttons. The card is
posted right after the core accepted the job; if Slack refuses it (the bot is not in that
private channel, say) the job is cancelled at once so nobody pays for a result they can't see.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_sdk.errors import SlackApiError

from adapters.slack.context import Origin, SlackContext
from adapters.slack.delivery import SlackDelivery
from adapters.slack.text import from_slack, take_links
from bot.errors import BotError
from bot.jobs import Invocation, Submitted
from bot.requests import parse_text

log = logging.getLogger(__name__)

MEDIA_COMMANDS = ("edit", "video", "transcribe")


async def start_job(
    ctx: SlackContext,
    origin: Origin,
    command: str,
    text: str,
    *,
    files: list[Mapping[str, Any]] | None = None,
    kind: str = "command",
) -> Submitted:
    """Parse, submit and show one job; raises BotError with what to tell the user."""
    prompt = from_slack(text)
    media: list[str] = []
    if command in MEDIA_COMMANDS:
        prompt, media = take_links(prompt)
        media += ctx.links.links_for(command, list(files or []))
    jobs = ctx.core.jobs
    request = parse_text(
        command, prompt, ctx.core.catalog, default_model=jobs.default_model(command), media=media
    )
    ref = origin.channel_ref(origin=kind, command=command, prompt=request.prompt)
    delivery = ctx.delivery(ref)
    identity = await ctx.people.identity(origin.team, origin.user)
    invocation = Invocation(request, identity, ref, delivery, await ctx.where(origin))
    submitted = await jobs.submit(invocation)
    await show_card(ctx, origin, submitted, delivery)
    return submitted


async def show_card(
    ctx: SlackContext, origin: Origin, submitted: Submitted, delivery: SlackDelivery
) -> None:
    """Post the job's card now, so the user sees it was accepted even before any progress."""
    log.info("slack job %s submitted by %s in %s", submitted.job_id, origin.user, origin.channel)
    if submitted.awaiting_confirmation or submitted.cached:
        return
    try:
        await delivery.open(submitted.job_id)
    except SlackApiError as exc:
        error = exc.response.get("error", "error")
        log.warning(
            "job %s: cannot post in %s (%s); cancelling", submitted.job_id, origin.channel, error
        )
        await ctx.core.jobs.cancel(
            submitted.job_id, origin.community, user=origin.user, is_admin=True
        )
        raise BotError(
            f"I can't post in this conversation ({error}), so I cancelled the job; nothing was"
            " charged. Invite me to the channel (`/invite @` and my name) and try again."
        ) from None
