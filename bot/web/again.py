""" "Run again" on a result page: the same request, a new seed, for the viewer, shown on the page.

It goes through `JobService.submit` like a chat command: the viewer's identity (their roles as
the platform reported them at sign-in) is held against their quota and the workspace's, and the
policy sees the original job's channel, as a non-NSFW channel (the page cannot vouch for one)
and the viewer's admin flag. The click on the page is the confirmation. The job answers here:
its `ChannelRef` names the platform "web", whose Delivery posts nothing; the result is kept like
every result and the new job's page shows it (and refreshes itself while it runs).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.delivery import ChannelRef, Confirmation, Failure, Progress, Result, Route
from bot.invocation import Invocation, Submitted
from bot.policy import Where
from bot.web.signin import Session

if TYPE_CHECKING:
    from bot.app import Core

log = logging.getLogger(__name__)

PLATFORM = "web"


class PageDelivery:
    """Nothing to post: the job's page reads the committed state and the kept result."""

    def __init__(self, ref: ChannelRef) -> None:
        self._ref = ref

    async def progress(self, update: Progress) -> None:
        return None

    async def confirm(self, request: Confirmation) -> None:
        return None  # never asked: the click on the page confirmed it

    async def deliver(self, result: Result, route: Route = Route.EDIT) -> None:
        log.info("job %s: result ready on the web page", result.job_id)

    async def fail(self, failure: Failure) -> None:
        log.info("job %s (web): %s", failure.job_id, failure.message)

    async def warn(self, job_id: str, message: str) -> None:
        log.info("job %s (web): %s", job_id, message)


def register(core: Core) -> None:
    """Let the core rebuild this Delivery for web jobs after a restart."""
    core.jobs.register_platform(PLATFORM, PageDelivery)


async def run_again(core: Core, session: Session, job_id: str) -> Submitted:
    """Start the job `job_id` made again for the viewer; raises the BotError they should see."""
    jobs = core.jobs
    original = await jobs.job(job_id, session.community)
    request = await jobs.rerun_request(job_id, session.community, mode="reroll")
    me = session.identity
    channel = original.channel.channel if original is not None else PLATFORM
    ref = ChannelRef(PLATFORM, me.workspace, channel, me.user, extra={"from": job_id})
    where = Where(channel=channel, is_admin=session.admin)
    invocation = Invocation(request, me, ref, PageDelivery(ref), where)
    return await jobs.submit(invocation, confirmed=True)
