"""Starting a job from Slack: text and files -> a core request -> submitted -> its card posted.

Shared by slash commands, mentions and the Reroll / Variations / Confirm buttons. The card is
posted right after the core accepted the job; if Slack refuses it (the bot is not in that
private channel, say) the job is cancelled at once so nobody pays for a result they can't see.
If Slack does not answer at all (an outage), the job goes on and shows up when Slack is back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from adapters.slack.context import Origin, SlackContext
from adapters.slack.delivery import SlackDelivery
from adapters.slack.text import from_slack, take_links
from bot.commands import COMMANDS
from bot.errors import BotError
from bot.jobs import COMMAND as CONVERSING
from bot.jobs import RUNNING, Invocation, Submitted, Thread
from bot.requests import parse_text

log = logging.getLogger(__name__)

# chat.postMessage's documented errors for "this conversation won't take the bot's messages";
# anything else (an HTML 503, a 5xx, a dropped connection) is Slack having trouble.
CANNOT_POST_HERE = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "team_access_not_granted",
    }
)


@dataclass(frozen=True)
class Asked:
    """A command as a member gave it: its name, the text after it, the files shared with it, and
    how it came (`command` for a slash command, `mention`), which the job's ChannelRef keeps."""

    name: str
    text: str
    files: Sequence[Mapping[str, Any]] = ()
    kind: str = "command"


async def start_job(ctx: SlackContext, origin: Origin, asked: Asked) -> Submitted:
    """Parse, submit and show one job; raises BotError with what to tell the user."""
    command, kind = asked.name, asked.kind
    prompt = from_slack(asked.text)
    media: list[str] = []
    if command in COMMANDS and COMMANDS[command].takes_media:
        prompt, media = take_links(prompt)
        media += ctx.links.links_for(command, list(asked.files))
    jobs = ctx.core.jobs
    request = parse_text(
        command, prompt, ctx.core.catalog, default_model=jobs.default_model(command), media=media
    )
    ref = origin.channel_ref(origin=kind, command=command, prompt=request.prompt)
    delivery = ctx.delivery(ref)
    identity = await ctx.people.identity(origin.team, origin.user)
    thread = None
    if command == CONVERSING and origin.thread:  # a mention: replies in its thread continue it
        thread = Thread(None, place_of(origin.channel, origin.thread), request.prompt)
    invocation = Invocation(request, identity, ref, delivery, await ctx.where(origin), thread)
    submitted = await jobs.submit(invocation)
    card = await show_card(ctx, origin, submitted, delivery)
    if command == CONVERSING and card is not None and not origin.thread:  # /ask: the card's
        platform, place = origin.community.platform, place_of(*card)
        await jobs.conversations.add_place(platform, origin.team, place, submitted.job_id)
    return submitted


def place_of(channel: str, thread_ts: str) -> str:
    """How a Slack thread is named as a conversation's place (`bot.jobs.conversations`)."""
    return f"{channel}/{thread_ts}"


async def show_card(
    ctx: SlackContext, origin: Origin, submitted: Submitted, delivery: SlackDelivery
) -> tuple[str, str] | None:
    """Post the job's card now, so the user sees it was accepted even before any progress.

    What the user is told when that fails depends on why, and on the job's committed state:
    Slack refusing this conversation cancels the job (nobody should pay for a result they
    can't see); Slack failing to answer (an outage, a dropped connection) leaves the job
    running, and its progress and result are posted as soon as Slack answers again.
    Returns the card's (channel, ts) when it was posted.
    """
    log.info("slack job %s submitted by %s in %s", submitted.job_id, origin.user, origin.channel)
    if submitted.awaiting_confirmation or submitted.cached:
        return None
    try:
        return await delivery.open(submitted.job_id)
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else None
        if error not in CANNOT_POST_HERE:  # an HTML 503 has no error code at all
            await _outage(ctx, origin, submitted.job_id, str(exc))
            return None
        log.warning(
            "job %s: cannot post in %s (%s); cancelling", submitted.job_id, origin.channel, error
        )
        said = await ctx.core.jobs.cancel(
            submitted.job_id, origin.community, user=origin.user, is_admin=True
        )
        raise BotError(
            f"I can't post in this conversation ({error}). Invite me to the channel"
            f" (`/invite @` and my name) and try again. {said}"
        ) from None
    except (SlackClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        await _outage(ctx, origin, submitted.job_id, repr(exc))
    return None


async def _outage(ctx: SlackContext, origin: Origin, job_id: str, why: str) -> None:
    """Slack did not take the card: say so if the job is still going, else let its end speak."""
    log.warning("job %s: Slack did not take its card (%s); the job goes on", job_id, why)
    job = await ctx.core.jobs.job(job_id, origin.community)
    if job is not None and job.state in RUNNING:
        raise BotError(
            "Slack is having trouble right now, so I could not post this job's card yet."
            " The job is running, and its result will be posted here when it is ready."
        )
