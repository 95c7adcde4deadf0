"""Driving one job through the real core, and reading back what the user saw and paid."""

from __future__ import annotations

from decimal import Decimal

from bot.app import Core
from bot.delivery import ChannelRef
from bot.jobs.invocation import Community, Invocation, Submitted
from bot.ledger.quota import Identity
from bot.policy import Where
from bot.requests import parse_text
from tests.fakes.delivery import RecordingDelivery

ALICE = Identity("test", "guild1", "alice")
HERE = Community(ALICE.platform, ALICE.workspace)


async def submit(
    core: Core,
    text: str,
    *,
    command: str = "imagine",
    media: tuple[str, ...] = (),
    delivery: RecordingDelivery | None = None,
) -> tuple[Submitted, RecordingDelivery]:
    """Parse `text` as the chat adapters do and submit it for ALICE in channel c1."""
    delivery = delivery or RecordingDelivery()
    request = parse_text(
        command, text, core.catalog, default_model=core.jobs.default_model(command), media=media
    )
    channel = ChannelRef("test", ALICE.workspace, "c1", ALICE.user)
    submitted = await core.jobs.submit(Invocation(request, ALICE, channel, delivery, Where("c1")))
    return submitted, delivery


async def spent_and_held(core: Core) -> tuple[Decimal, Decimal]:
    """ALICE's settled spend and open holds today."""
    day = (await core.ledger.usage(ALICE)).user[0]
    return day.spent, day.held
