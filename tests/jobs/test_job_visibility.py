"""A job is visible only inside its own platform and workspace (server, Slack team, terminal).

Job ids appear on cards and in `/usage`; a member of another workspace who learns one (a
shared channel, a screenshot) must not get its prompt, its Runpod call or its media from this
bot. A lookup from the wrong community answers exactly like an id never issued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import Core
from bot.cli.playground import local_identity
from bot.errors import InvalidRequest
from bot.jobs.invocation import UNKNOWN_JOB, Community
from bot.ledger.quota import Identity
from tests.discord.support import discord_settings, job_id_of, reply_to, result_of, running_bot
from tests.fakes.discord import FakeDiscord, FakeGuild
from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import Message
from tests.fakes.slack_signing import block_actions, slash_command
from tests.jobs.support import submit
from tests.slack.support import ALICE, CHANNEL, SlackBot, button_value

OTHER_TEAM = "T0OTHERTEAM"
EVE = "U0EVE"  # a member of OTHER_TEAM
DISCORD_PROMPT = "a secret discord fox"
SLACK_PROMPT = "a secret slack fox"


async def run_job(core: Core, who: Identity, prompt: str) -> str:
    """A finished job of `who`, asked through the core as any adapter would."""
    submitted, delivery = await submit(core, f"{prompt} --size 256x256", who=who)
    await delivery.wait_for(lambda: delivery.results)
    return submitted.job_id


# --- Slack, over the wire ---------------------------------------------------------------------


@pytest.fixture
def slack(slack_bot: SlackBot) -> SlackBot:
    """The Slack bot, its workspace also knowing EVE (who belongs to OTHER_TEAM)."""
    slack_bot.fake.add_user(EVE, "eve")
    return slack_bot


async def show_from(bot: SlackBot, team: str, user: str, job_id: str) -> Message:
    payload = slash_command(bot.fake, "/show", job_id, user_id=user, channel_id=CHANNEL)
    payload["team_id"] = team
    before = len(bot.ephemerals(user))
    response = await bot.signer.post_command(bot.url, payload)
    assert response.status == 200, response
    return (await bot.wait(lambda: len(bot.ephemerals(user)) > before and bot.ephemerals(user)))[-1]


async def click_from(bot: SlackBot, team: str, user: str, card: Message, action_id: str) -> Message:
    value = button_value(card, action_id)
    payload = block_actions(bot.fake, card, action_id=action_id, value=value, user_id=user)
    payload["team"]["id"] = payload["user"]["team_id"] = team
    before = len(bot.ephemerals(user))
    response = await bot.signer.post_interaction(bot.url, payload)
    assert response.status == 200, response
    return (await bot.wait(lambda: len(bot.ephemerals(user)) > before and bot.ephemerals(user)))[-1]


async def test_slack_show_answers_only_for_jobs_of_its_own_workspace(slack: SlackBot) -> None:
    await slack.command("/imagine", f"{SLACK_PROMPT} --size 256x256")
    (card,) = await slack.wait(slack.finished_cards)
    slack_job = button_value(card, "job_show")
    discord_job = await run_job(slack.core, Identity("discord", "4242", "99"), DISCORD_PROMPT)
    await slack.idle()

    unknown = await show_from(slack, OTHER_TEAM, EVE, "0123456789ab")
    assert unknown.text == UNKNOWN_JOB
    for team, user, job_id in (
        (OTHER_TEAM, EVE, slack_job),  # another workspace
        (OTHER_TEAM, EVE, discord_job),
        (slack.fake.team_id, ALICE, discord_job),  # this workspace, but a Discord job
    ):
        reply = await show_from(slack, team, user, job_id)
        assert reply.text == unknown.text, (team, job_id)
    own = await show_from(slack, slack.fake.team_id, ALICE, slack_job)
    assert f"The Runpod API call for job `{slack_job}`" in own.text
    assert SLACK_PROMPT in own.text


async def test_slack_buttons_of_another_workspace_do_nothing(slack: SlackBot) -> None:
    await slack.command("/imagine", f"{SLACK_PROMPT} --size 256x256")
    (card,) = await slack.wait(slack.finished_cards)
    await slack.idle()

    shown = await click_from(slack, OTHER_TEAM, EVE, card, "job_show")
    assert shown.text == UNKNOWN_JOB and SLACK_PROMPT not in shown.text
    rerolled = await click_from(slack, OTHER_TEAM, EVE, card, "job_reroll")
    assert rerolled.text == UNKNOWN_JOB
    await slack.idle()
    assert slack.runpod.count("run") == 1, "another workspace's click ran the job again"


# --- Discord, over the wire -------------------------------------------------------------------


@pytest.fixture
async def two_guilds() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(guilds=[FakeGuild("Guild A"), FakeGuild("Guild B")]) as fake:
        yield fake


async def test_discord_show_in_another_server_is_not_known(
    tmp_path: Path, runpod_fake: FakeRunpod, two_guilds: FakeDiscord
) -> None:
    fake = two_guilds
    guild_a, guild_b = fake.guilds
    media = {"media_dir": str(tmp_path / "media")}
    async with running_bot(discord_settings(tmp_path, runpod_fake, fake, storage=media)) as bot:
        first = await result_of(await fake.slash_command("imagine", {"prompt": "a fox"}))
        job = job_id_of(first)
        await bot.core.jobs.wait_idle(10)
        elsewhere = await fake.slash_command("show", {"job_id": job}, guild_id=guild_b.id)
        refused = await reply_to(elsewhere, lambda m: m.ephemeral)
        unknown = await fake.slash_command("show", {"job_id": "0123456789ab"}, guild_id=guild_b.id)
        never_issued = await reply_to(unknown, lambda m: m.ephemeral)
        again = await result_of(
            await fake.slash_command("show", {"job_id": job}, guild_id=guild_a.id)
        )
    assert refused.content == never_issued.content.replace("0123456789ab", job)
    assert not refused.attachments and "a fox" not in refused.content
    assert again.attachments and again.attachments[0].data == first.attachments[0].data


# --- the core, for every platform and the terminal --------------------------------------------


@pytest.mark.parametrize(
    "viewer",
    [
        Community("slack", "T0OTHERTEAM"),  # another Slack workspace
        Community("discord", "1111"),  # another Discord server (its Show request button too)
        Community("discord", "dm"),
        Community("cli", local_identity().workspace),  # the terminal (`python -m bot try`)
        Community("slack", "4242"),  # the same workspace id on another platform
    ],
)
async def test_every_lookup_by_id_is_refused_outside_the_jobs_community(
    core: Core, viewer: Community
) -> None:
    job_id = await run_job(core, Identity("discord", "4242", "99"), DISCORD_PROMPT)
    assert await core.jobs.job(job_id, viewer) is None
    for attempt in (
        core.jobs.show_request(job_id, viewer),
        core.jobs.cancel(job_id, viewer, user="99", is_admin=True),
        core.jobs.confirm(job_id, viewer, user="99"),
        core.jobs.rerun_request(job_id, viewer, mode="reroll"),
    ):
        with pytest.raises(InvalidRequest) as refused:
            await attempt
        assert refused.value.message == UNKNOWN_JOB
    home = Community("discord", "4242")
    assert DISCORD_PROMPT in await core.jobs.show_request(job_id, home)


async def test_the_terminal_sees_its_own_jobs(core: Core) -> None:
    me = local_identity()
    job_id = await run_job(core, me, "a terminal fox")
    assert (await core.jobs.job(job_id, Community(me.platform, me.workspace))) is not None
    assert await core.jobs.job(job_id, Community("slack", me.workspace)) is None
