"""The web page in a real browser: Playwright driving Debian's Chromium (`apt-get install
chromium`; Playwright's own browser download is not used).

A member gets a link through the fake Discord, signs in, opens the gallery and a result; an
admin sets a limit that `/usage` in chat then reports; a member is refused the admin page.
Screenshots go to `$WEB_SCREENSHOTS` (default: the test's tmp folder) as test artifacts.
Without Chromium or Playwright these tests skip saying why, except under CI=true, where they fail.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.discord import DiscordAdapter
from bot.jobs.invocation import Community
from bot.web.gallery import PAGE_SIZE
from tests.discord.support import fields, job_id_of, result_of
from tests.fakes.discord import FakeDiscord
from tests.fakes.runpod import FakeRunpod
from tests.web.support import PUBLIC_URL, running_page, web_link

CHROMIUM = Path(os.environ.get("WEB_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI") == "true"


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


MISSING = _missing()
if MISSING and IN_CI:
    raise RuntimeError(f"browser tests cannot run under CI: {MISSING}")
pytestmark = [
    pytest.mark.skipif(MISSING is not None, reason=f"browser tests skipped: {MISSING}"),
    pytest.mark.bot_settings(archive=True, web={"public_url": PUBLIC_URL}),
]


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("WEB_SCREENSHOTS", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-proxy-server"]
        )
        try:
            yield launched
        finally:
            await launched.close()


async def test_a_member_signs_in_opens_the_gallery_and_a_result_and_runs_it_again(
    discord_bot: DiscordAdapter,
    discord_fake: FakeDiscord,
    runpod_fake: FakeRunpod,
    browser: object,
    shots: Path,
) -> None:
    from playwright.async_api import Browser, expect

    assert isinstance(browser, Browser)
    prompts = ["a lighthouse at dusk", "a fox in the snow"]
    jobs = [
        job_id_of(
            await result_of(
                await discord_fake.slash_command("imagine", {"prompt": prompt, "size": "512x512"})
            )
        )
        for prompt in prompts
    ]
    async with running_page(discord_bot.core) as base:
        page = await browser.new_page(viewport={"width": 900, "height": 700})
        await page.goto(await web_link(discord_fake, base))
        await page.click("#signin")
        await expect(page.locator("h1")).to_have_text("What the community made")
        newest = page.locator(".card").first
        await expect(newest.locator(".prompt")).to_have_text("a fox in the snow")
        image = newest.locator("img")
        await expect(image).to_have_attribute("alt", "a fox in the snow")
        loaded = await image.evaluate("img => img.complete && img.naturalWidth")
        await page.screenshot(path=str(shots / "gallery.png"), full_page=True)

        await newest.locator("a.result-link").click()
        await expect(page.locator("h1")).to_have_text(f"Result {jobs[1]}")
        await expect(page.locator("dd.prompt")).to_have_text("a fox in the snow")
        await expect(page.locator("pre.api")).to_contain_text("curl")
        await page.screenshot(path=str(shots / "result.png"), full_page=True)

        await page.click("#again")  # the new job's page refreshes itself until its result shows
        await expect(page.locator("dd.prompt")).to_have_text("a fox in the snow")
        await expect(page.locator(".media img")).to_have_count(1, timeout=15_000)
        rerun = page.url.rsplit("/", 1)[1]
    dm = discord_fake.dm_channel(discord_fake.user)
    in_dm = await discord_fake.wait_for_message(lambda m: m.channel_id == dm.id, timeout=10)
    assert loaded == 512  # the image came through its signed media URL
    record = await discord_bot.core.jobs.job(
        rerun, Community("discord", str(discord_fake.guild.id))
    )
    assert rerun not in jobs and len(runpod_fake.jobs) == 3  # the rerun reached Runpod
    assert record is not None and record.state == "delivered" and record.cost
    assert in_dm.attachments and f"job {rerun}" in str(in_dm.embeds)  # and in the member's DM


async def test_an_admin_sets_a_limit_in_the_browser_and_usage_reports_it(
    discord_bot: DiscordAdapter, discord_fake: FakeDiscord, browser: object, shots: Path
) -> None:
    from playwright.async_api import Browser, expect

    assert isinstance(browser, Browser)
    async with running_page(discord_bot.core) as base:
        admin = await browser.new_page()
        await admin.goto(await web_link(discord_fake, base, user=discord_fake.guild.owner))
        await admin.click("#signin")
        await admin.goto(f"{base}/web/admin")
        await admin.fill("#member", str(discord_fake.user.id))
        await admin.fill("#daily", "0.30")
        await admin.click("#set-limits")
        await expect(admin.locator(".done")).to_have_text(
            f"Limits of member {discord_fake.user.id} set: daily $0.30."
        )
        await admin.screenshot(path=str(shots / "admin.png"), full_page=True)

        member = await (await browser.new_context()).new_page()
        await member.goto(await web_link(discord_fake, base))
        await member.click("#signin")
        refused = await member.goto(f"{base}/web/admin")
        await expect(member.locator(".message")).to_contain_text("Only the workspace's admins")
    usage = await (await discord_fake.slash_command("usage")).wait_for_message()
    assert refused is not None and refused.status == 403
    assert fields(usage)["Daily"].startswith("$0.00 of $0.30 spent")


async def test_a_member_pages_through_the_gallery(
    discord_bot: DiscordAdapter, discord_fake: FakeDiscord, browser: object, shots: Path
) -> None:
    from playwright.async_api import Browser, expect

    assert isinstance(browser, Browser)
    for n in range(PAGE_SIZE + 1):
        await result_of(await discord_fake.slash_command("imagine", {"prompt": f"boat {n}"}))
    async with running_page(discord_bot.core) as base:
        page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        await page.goto(await web_link(discord_fake, base))
        await page.click("#signin")
        await expect(page.locator(".card")).to_have_count(PAGE_SIZE)
        await expect(page.locator(".card .prompt").first).to_have_text(f"boat {PAGE_SIZE}")
        await page.click("a[rel=next]")
        await expect(page.locator(".card .prompt")).to_have_text(["boat 0"])
        await page.screenshot(path=str(shots / "gallery-page-2-phone.png"), full_page=True)
        await page.click("a[rel=prev]")
        await expect(page.locator(".card")).to_have_count(PAGE_SIZE)
