"""Signing in to the web page from Slack: `/web` over the real Bolt app against FakeSlack."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from bot.jobs.invocation import Community
from tests.conftest import process_env
from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_signing import event_callback, slash_command
from tests.slack.support import (
    ALICE,
    BOB,
    BOSS,
    CHANNEL,
    SlackBot,
    button_value,
    running_bot,
    slack_env,
)
from tests.web.support import PUBLIC_URL, link_in, running_page, sign_in, until

pytestmark = pytest.mark.bot_settings(web={"public_url": PUBLIC_URL})


async def web_link(bot: SlackBot, base: str, user: str) -> str:
    before = len(bot.ephemerals(user))
    await bot.command("/web", user=user)
    replies = await bot.wait(lambda: len(bot.ephemerals(user)) > before and bot.ephemerals(user))
    return link_in(replies[-1].text, base)


async def test_slack_members_sign_in_and_only_admins_get_the_limits_page(
    slack_bot: SlackBot,
) -> None:
    await slack_bot.command("/imagine", "a slack cat --seed 3")
    (card,) = await slack_bot.wait(slack_bot.finished_cards)
    job = button_value(card, "job_reroll")
    async with running_page(slack_bot.core) as base:
        async with httpx.AsyncClient() as alice, httpx.AsyncClient() as boss:
            await sign_in(alice, await web_link(slack_bot, base, ALICE))
            await sign_in(boss, await web_link(slack_bot, base, BOSS))
            gallery = await alice.get(f"{base}/web/")
            refused = await alice.get(f"{base}/web/admin")
            limits = await boss.get(f"{base}/web/admin")

    assert f'href="/web/job/{job}"' in gallery.text and "a slack cat" in gallery.text
    assert refused.status_code == 403
    assert limits.status_code == 200 and 'id="set-limits"' in limits.text


async def test_a_deactivated_member_loses_the_page_and_a_demoted_admin_the_admin_page(
    slack_bot: SlackBot,
) -> None:
    fake = slack_bot.fake
    async with running_page(slack_bot.core) as base:
        async with httpx.AsyncClient() as alice, httpx.AsyncClient() as boss:
            await sign_in(alice, await web_link(slack_bot, base, ALICE))
            await sign_in(boss, await web_link(slack_bot, base, BOSS))
            before = await alice.get(f"{base}/web/")
            gone = {"id": ALICE, "team_id": fake.team_id, "deleted": True, "profile": {}}
            changed = event_callback(fake, {"type": "user_change", "user": gone})
            assert (await slack_bot.signer.post_event(slack_bot.url, changed)).status == 200

            async def ended() -> bool:
                return (await alice.get(f"{base}/web/")).status_code == 401

            await until(ended)
            as_admin = await boss.get(f"{base}/web/admin")
            fake.users[BOSS] = replace(fake.users[BOSS], is_admin=False)  # no event: re-checked
            demoted = await boss.get(f"{base}/web/admin")
    assert before.status_code == 200
    assert as_admin.status_code == 200 and demoted.status_code == 403


async def test_slack_web_says_how_to_enable_it(
    tmp_path: Path, runpod_fake: FakeRunpod, slack_fake: FakeSlack
) -> None:
    async with running_bot(tmp_path, runpod_fake, slack_fake) as bot:
        await bot.command("/web")
        (reply,) = await bot.wait(bot.ephemerals)
    assert "web.public_url" in reply.text


async def test_slack_web_hide_mine(slack_bot: SlackBot) -> None:
    await slack_bot.command("/web", "hide-mine")
    (reply,) = await slack_bot.wait(slack_bot.ephemerals)
    assert "no longer shown on the web page" in reply.text


async def test_results_from_slack_nsfw_channels_are_not_listed(
    tmp_path: Path, runpod_fake: FakeRunpod, slack_fake: FakeSlack
) -> None:
    web = {"public_url": PUBLIC_URL}
    slack = {"nsfw_channels": [CHANNEL]}
    async with running_bot(tmp_path, runpod_fake, slack_fake, web=web, slack=slack) as bot:
        await bot.command("/imagine", "a night cat")
        (card,) = await bot.wait(bot.finished_cards)
        job = button_value(card, "job_reroll")
        async with running_page(bot.core) as base, httpx.AsyncClient() as alice:
            await sign_in(alice, await web_link(bot, base, ALICE))
            gallery = await alice.get(f"{base}/web/")
            page = await alice.get(f"{base}/web/job/{job}")
    assert job not in gallery.text and page.status_code == 404


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_python_m_bot_run_serves_the_page_it_links_to(
    tmp_path: Path, runpod_fake: FakeRunpod, slack_fake: FakeSlack
) -> None:
    port = free_port()
    env = process_env(
        tmp_path,
        runpod_fake,
        BOT_HTTP__PORT=str(port),
        BOT_WEB__PUBLIC_URL=PUBLIC_URL,
        **slack_env(slack_fake),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        command = slash_command(slack_fake, "/web", "", user_id=ALICE, channel_id=CHANNEL)
        await slack_fake.socket_send("slash_commands", command, timeout=20)
        (reply,) = await slack_fake.wait_for(
            lambda: [m for m in slack_fake.messages if m.ephemeral_to == ALICE], timeout=20
        )
        async with httpx.AsyncClient() as alice:
            signed_in = await sign_in(alice, link_in(reply.text, f"http://127.0.0.1:{port}"))
            gallery = await alice.get(f"http://127.0.0.1:{port}/web/")
    finally:
        process.send_signal(signal.SIGTERM)
        output, errors = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, (output + errors).decode()
    assert signed_in.status_code == 303
    assert gallery.status_code == 200 and "No results here yet." in gallery.text


async def run_again(bot: SlackBot, prompt: str) -> tuple[str, httpx.Response]:
    """Alice makes an image in the channel, then runs it again from its page: (new job, page)."""
    await bot.command("/imagine", f"{prompt} --seed 3")
    (card,) = await bot.wait(bot.finished_cards)
    original = button_value(card, "job_reroll")
    async with running_page(bot.core) as base, httpx.AsyncClient() as alice:
        await sign_in(alice, await web_link(bot, base, ALICE))
        page = await alice.get(f"{base}/web/job/{original}")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        started = await alice.post(f"{base}/web/job/{original}/again", data={"csrf": csrf})
        assert started.status_code == 303
        new_job = started.headers["location"].rsplit("/", 1)[1]
        await bot.core.jobs.wait_idle(10)
        return new_job, await alice.get(f"{base}/web/job/{new_job}")


async def test_run_again_from_slack_posts_the_result_to_the_viewers_dm(slack_bot: SlackBot) -> None:
    new_job, shown = await run_again(slack_bot, "a slack fox")
    dm = slack_bot.fake.dm_channel(ALICE)
    (card,) = await slack_bot.wait(lambda: slack_bot.finished_cards(dm))
    uploaded = [u for u in slack_bot.fake.uploads if u.channel_id == dm]
    assert button_value(card, "job_reroll") == new_job and "a slack fox" in card.text
    assert len(uploaded) == 1 and uploaded[0].data  # the image itself, not a link
    assert shown.status_code == 200 and "<img src=" in shown.text


async def test_run_again_shows_on_the_page_when_the_dm_is_refused(slack_bot: SlackBot) -> None:
    slack_bot.fake.fail_next("conversations.open", "cannot_dm_bot")
    new_job, shown = await run_again(slack_bot, "a shy fox")
    record = await slack_bot.core.jobs.job(new_job, Community("slack", slack_bot.fake.team_id))
    assert slack_bot.fake.calls_to("conversations.open")[0].error == "cannot_dm_bot"
    assert not slack_bot.finished_cards(slack_bot.fake.dm_channel(ALICE))
    assert record is not None and record.state == "delivered"
    assert shown.status_code == 200 and "a shy fox" in shown.text and "<img src=" in shown.text


async def test_the_gallery_names_a_slack_member_from_one_profile_lookup(
    slack_bot: SlackBot,
) -> None:
    eve = slack_bot.fake.add_user("U0EVE", "<b>Eve</b> & co", real_name="Eve Real").id
    for made, prompt in enumerate(("a hostile cat", "another hostile cat"), start=1):
        await slack_bot.command("/imagine", prompt, user=eve)
        await slack_bot.wait(lambda n=made: len(slack_bot.finished_cards()) >= n)
    await slack_bot.idle()
    async with running_page(slack_bot.core) as base, httpx.AsyncClient() as alice:
        await sign_in(alice, await web_link(slack_bot, base, ALICE))
        gallery = await alice.get(f"{base}/web/")
    lookups = [c for c in slack_bot.fake.calls_to("users.info") if c.params.get("user") == eve]
    assert "&lt;b&gt;Eve&lt;/b&gt; &amp; co" in gallery.text and "<b>Eve</b>" not in gallery.text
    assert len(lookups) == 1  # one users.info for the name and the admin check, not per command


async def test_a_restart_does_not_look_the_name_up_again_the_same_day(
    tmp_path: Path, runpod_fake: FakeRunpod, slack_fake: FakeSlack
) -> None:
    web = {"public_url": PUBLIC_URL}
    for told in (1, 2):  # the second bot is a restart on the same database
        async with running_bot(tmp_path, runpod_fake, slack_fake, web=web) as bot:
            await bot.command("/usage", user=BOB)
            await bot.wait(lambda n=told: len(bot.ephemerals(BOB)) >= n)
            await bot.idle()
    lookups = [c for c in slack_fake.calls_to("users.info") if c.params.get("user") == BOB]
    assert len(lookups) == 1
