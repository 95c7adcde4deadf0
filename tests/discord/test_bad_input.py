"""Bad input that used to get through Discord's typed options: the top seed (wrapped to 0), a
prompt of control characters (a paid job), a $1e12 quota amount (a traceback).

Real discord.py against FakeDiscord, the real core against FakeRunpod; judged by what the member
reads, what Runpod received and what the ledger holds.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.discord import DiscordAdapter
from tests.discord.support import (
    fields,
    job_id_of,
    member_of,
    reply_to,
    result_of,
)
from tests.fakes.discord import FakeDiscord
from tests.fakes.runpod import FakeRunpod

TOP_SEED = 2**31 - 1  # the most Discord's integer option (and the models) take


async def test_the_top_seed_reaches_runpod_and_show_request_as_typed(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    done = await result_of(
        await fake.slash_command(
            "imagine", {"prompt": "a fox", "seed": TOP_SEED, "size": "256x256"}
        )
    )
    job = fields(done)
    shown = await reply_to(await fake.click_button(done, f"rpb:request:{job_id_of(done)}"))

    (sent,) = runpod_fake.jobs.values()
    assert sent.input["seed"] == TOP_SEED and job["Seed"] == str(TOP_SEED)
    assert f'"seed": {TOP_SEED}' in shown.content and f"'seed': {TOP_SEED}" in shown.content


@pytest.mark.parametrize("prompt", ["\x00\x01", "\x7f\x1b", "\u200b\ufeff"])
async def test_a_prompt_with_nothing_visible_is_refused_and_costs_nothing(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod, prompt: str
) -> None:
    refused = await (await fake.slash_command("imagine", {"prompt": prompt})).wait_for_message()
    await bot.core.jobs.wait_idle(10)

    assert refused.ephemeral and "prompt is required" in refused.content
    assert runpod_fake.count("run") == 0 and not runpod_fake.jobs
    usage = await bot.core.ledger.usage(member_of(fake))
    assert (usage.user[0].spent, usage.user[0].held) == (0, 0)


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("quota set", {"daily": "1e12"}),
        ("quota set", {"monthly": "$100000.01"}),
        ("quota grant", {"amount": 1e12, "reason": "everything"}),
    ],
)
async def test_quota_refuses_an_amount_above_the_maximum(
    bot: DiscordAdapter, fake: FakeDiscord, command: str, options: dict[str, object]
) -> None:
    sent = await fake.slash_command(
        command, {"member": fake.user, **options}, user=fake.guild.owner
    )
    refused = await sent.wait_for_message()

    assert refused.ephemeral and refused.content == "Amounts above $100,000.00 are not accepted."
    usage = await bot.core.ledger.usage(member_of(fake))
    assert usage.user[0].limit == Decimal("1.00")  # the default daily limit, unchanged
    written = await bot.core.db.fetchone(
        "SELECT (SELECT COUNT(*) FROM grants) + (SELECT COUNT(*) FROM limit_overrides)"
    )
    assert written is not None and written[0] == 0
