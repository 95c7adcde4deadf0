""" "Run again" on a result page: the same request, a new seed, for the viewer, shown on the page
and posted to the viewer's direct messages in chat.

It goes through `JobService.submit` like a chat command: the viewer's identity (their roles as
the platform reported them at sign-in) is held against their quota and the workspace's, and the
policy sees the original job's channel, as a non-NSFW channel (the page cannot vouch for one)
and the viewer's admin flag. The click on the page is the confirmation. The job answers here:
its `ChannelRef` names the platform "web" (and in `extra["via"]` the viewer's platform); the result
is kept like every result and the new job's page shows it (and refreshes itself while it runs).
Where the viewer's adapter registered a direct Delivery (`Core.web`), the result is also sent to
them there with `Route.DIRECT`, a DM; progress and failures stay on the page.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.delivery import (
    ChannelRef,
    Confirmation,
    DeliveryFactory,
    Failure,
    Progress,
    Result,
    Route,
)
from bot.jobs.invocation import Invocation, Submitted
from bot.policy import Where
from bot.web.signin import Session

if TYPE_CHECKING:
    from bot.app import Core

log = logging.getLogger(__name__)

PLATFORM = "web"


class PageDelivery:
    """The job's page reads the committed state and the kept result; the result alone also
    goes to the viewer's DM when their platform can send one."""

    def __init__(self, ref: ChannelRef, direct: DeliveryFactory | None = None) -> None:
        self._ref = ref
        self._direct = direct

    async def progress(self, update: Progress) -> None:
        return None

    async def confirm(self, request: Confirmation) -> None:
        return None  # never asked: the click on the page confirmed it

    async def deliver(self, result: Result, route: Route = Route.EDIT) -> None:
        log.info("job %s: result ready on the web page", result.job_id)
        if self._direct is not None:
            ref = self._ref
            chat = ChannelRef(ref.extra["via"], ref.workspace, ref.channel, ref.user)
            try:
                await self._direct(chat).deliver(result, Route.DIRECT)
            except Exception as exc:  # e.g. DMs closed: the page still shows it
                log.warning("job %s: not sent to the viewer's DM: %s", result.job_id, exc)

    async def fail(self, failure: Failure) -> None:
        log.info("job %s (web): %s", failure.job_id, failure.message)

    async def warn(self, job_id: str, message: str) -> None:
        log.info("job %s (web): %s", job_id, message)


def register(core: Core) -> None:
    """Let the core rebuild this Delivery for web jobs after a restart."""

    def rebuild(ref: ChannelRef) -> PageDelivery:
        return PageDelivery(ref, core.web.direct.get(ref.extra.get("via", "")))

    core.jobs.register_platform(PLATFORM, rebuild)


async def run_again(core: Core, session: Session, job_id: str) -> Submitted:
    """Start the job `job_id` made again for the viewer; raises the BotError they should see."""
    jobs = core.jobs
    original = await jobs.job(job_id, session.community)
    request = await jobs.rerun_request(job_id, session.community, mode="reroll")
    me = session.identity
    channel = original.channel.channel if original is not None else PLATFORM
    extra = {"from": job_id, "via": me.platform}
    ref = ChannelRef(PLATFORM, me.workspace, channel, me.user, extra=extra)
    where = Where(channel=channel, is_admin=session.admin)
    delivery = PageDelivery(ref, core.web.direct.get(me.platform))
    invocation = Invocation(request, me, ref, delivery, where)
    return await jobs.submit(invocation, confirmed=True)
