"""Submitting a job through the real core as the chat adapters do, and reading what it cost."""

from __future__ import annotations

from decimal import Decimal

from bot.app import Core
from bot.delivery import ChannelRef
from bot.jobs.invocation import Invocation, Submitted
from bot.ledger.quota import Identity
from bot.policy import Where
from bot.requests import parse_text
from tests.fakes.delivery import RecordingDelivery
from tests.identities import ALICE


async def submit(
    core: Core,
    text: str,
    *,
    command: str = "imagine",
    who: Identity = ALICE,
    delivery: RecordingDelivery | None = None,
    media: tuple[str, ...] = (),
    channel: str = "c1",
) -> tuple[Submitted, RecordingDelivery]:
    """Parse `text` as the chat adapters do and submit it for `who` in `channel`."""
    delivery = delivery or RecordingDelivery()
    request = parse_text(
        command, text, core.catalog, default_model=core.jobs.default_model(command), media=media
    )
    ref = ChannelRef(who.platform, who.workspace, channel, who.user)
    submitted = await core.jobs.submit(Invocation(request, who, ref, delivery, Where(channel)))
    return submitted, delivery


async def spent(core: Core, who: Identity = ALICE) -> tuple[Decimal, Decimal]:
    """What `who` has spent (settled) and has on hold today."""
    day = (await core.ledger.usage(who)).user[0]
    return day.spent, day.held
