"""The web page over HTTP, signed in through the real Discord adapter against FakeDiscord.

What a member notices: the link `/web` answers with, what the pages show (and never show),
which requests are refused, and the limits `/usage` reports after the admin form.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import time_machine
from markupsafe import escape

from adapters.discord import DiscordAdapter
from bot.config import QuotaLimits
from bot.jobs.invocation import Community
from bot.ledger.periods import local_date
from bot.ledger.quota import Identity
from bot.web.gallery import PAGE_SIZE
from tests.discord.support import (
    discord_settings,
    fields,
    job_id_of,
    member_of,
    result_of,
    running_bot,
)
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser, point_discord_py_at
from tests.fakes.discord_gateway import GUILD_MEMBERS_INTENT, FakeRole
from tests.fakes.runpod import FakeRunpod
from tests.web.support import PUBLIC_URL, imagine, running_page, sign_in, until, web_link

MANAGE_GUILD = 1 << 5
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    moderators = FakeRole("moderators", MANAGE_GUILD)
    guilds = [FakeGuild(name="Home", roles=[moderators]), FakeGuild(name="Elsewhere")]
    async with FakeDiscord(guilds=guilds, user=FakeUser("member", global_name=HOSTILE)) as fake:
        with point_discord_py_at(fake):
            yield fake


def settings_for(
    tmp_path: Path,
    runpod: FakeRunpod,
    fake: FakeDiscord,
    database: Path | str | None = None,
    **web: Any,
) -> Any:
    return discord_settings(
        tmp_path,
        runpod,
        fake,
        database=database,
        storage={"media_dir": str(tmp_path / "media")},
        web={"public_url": PUBLIC_URL, **web},
    )


@pytest.fixture
async def bot(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord, db_place: Path | str
) -> AsyncIterator[DiscordAdapter]:
    """The bot on SQLite and on PostgreSQL: every page's queries run on both."""
    async with running_bot(settings_for(tmp_path, runpod_fake, fake, db_place)) as adapter:
        yield adapter


@pytest.fixture
async def base(bot: DiscordAdapter) -> AsyncIterator[str]:
    async with running_page(bot.core) as url:
        yield url


async def test_a_member_signs_in_from_web_and_sees_the_result_with_its_media(
    bot: DiscordAdapter, fake: FakeDiscord, base: str
) -> None:
    job = await imagine(fake, "a red fox in the snow")
    link = await web_link(fake, base)
    async with httpx.AsyncClient() as client:
        signed_in = await sign_in(client, link)
        gallery = await client.get(f"{base}/web/")
        page = await client.get(f"{base}/web/job/{job}")
        image_url = page.text.split('<img src="', 1)[1].split('"', 1)[0]
        image = await client.get(base + image_url)

    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/web/"
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/web" in cookie
    assert "Secure" not in cookie  # http public_url
    assert gallery.status_code == 200
    assert f"flux-schnell · {escape(HOSTILE)} ·" in gallery.text  # named, as text
    assert (
        f'href="/web/job/{job}"' in gallery.text and 'alt="a red fox in the snow"' in gallery.text
    )
    assert "a red fox in the snow" in page.text and "flux-schnell" in page.text
    assert "api/v2" in page.text or "runsync" in page.text or "/run" in page.text  # the API call
    assert image_url.startswith(f"/web/media/results/{job}/")
    stored = await bot.core.jobs.kept.files(job)
    assert stored is not None and image.content == stored[0].data


async def test_a_link_works_once(bot: DiscordAdapter, fake: FakeDiscord, base: str) -> None:
    link = await web_link(fake, base)
    async with httpx.AsyncClient() as first, httpx.AsyncClient() as second:
        assert (await sign_in(first, link)).status_code == 303
        again = await second.post(link)
        refused_gallery = await second.get(f"{base}/web/")
    assert again.status_code == 403 and "used already or has expired" in again.text
    assert refused_gallery.status_code == 401 and "Type /web" in refused_gallery.text


async def test_an_expired_link_is_refused(
    bot: DiscordAdapter, fake: FakeDiscord, base: str
) -> None:
    link = await web_link(fake, base)
    with time_machine.travel(datetime.fromtimestamp(time.time() + 11 * 60, UTC), tick=True):
        async with httpx.AsyncClient() as client:
            late = await client.post(link)
    assert late.status_code == 403 and "expired" in late.text


async def test_a_forged_link_and_a_forged_cookie_are_refused(
    bot: DiscordAdapter, base: str
) -> None:
    async with httpx.AsyncClient(cookies={"rpb_session": "guess"}) as client:
        forged = await client.post(f"{base}/web/signin/not-a-token-the-bot-issued")
        gallery = await client.get(f"{base}/web/")
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    assert gallery.status_code == 401


async def test_no_route_shows_another_servers_results(
    bot: DiscordAdapter, fake: FakeDiscord, base: str
) -> None:
    home, elsewhere = fake.guilds
    mine = await imagine(fake, "home fox", guild_id=home.id)
    theirs = await imagine(fake, "secret elsewhere owl", guild_id=elsewhere.id)
    async with httpx.AsyncClient() as there, httpx.AsyncClient() as here:
        await sign_in(there, await web_link(fake, base, guild_id=elsewhere.id))
        their_page = await there.get(f"{base}/web/job/{theirs}")
        their_media = their_page.text.split('<img src="', 1)[1].split('"', 1)[0]
        await sign_in(here, await web_link(fake, base, guild_id=home.id))
        pages = {
            "gallery": await here.get(f"{base}/web/"),
            "filtered": await here.get(f"{base}/web/", params={"member": str(fake.user.id)}),
            "job": await here.get(f"{base}/web/job/{theirs}"),
            "media": await here.get(base + their_media),
            "spend": await here.get(f"{base}/web/spend"),
            "csv": await here.get(f"{base}/web/spend.csv"),
        }
        async with httpx.AsyncClient() as home_admin:
            await sign_in(home_admin, await web_link(fake, base, user=home.owner))
            pages["admin"] = await home_admin.get(f"{base}/web/admin")
            pages["report"] = await home_admin.get(f"{base}/web/admin/report.csv")
    assert their_page.status_code == 200 and "secret elsewhere owl" in their_page.text
    assert pages["job"].status_code == 404 and pages["media"].status_code == 404
    for name, page in pages.items():
        assert theirs not in page.text and "secret elsewhere owl" not in page.text, name
    assert mine in pages["gallery"].text and mine in pages["csv"].text
    assert f"member,{fake.user.id},1," in pages["report"].text  # the home job only, not both


async def test_pages_carry_a_strict_csp_and_show_hostile_text_as_text(
    bot: DiscordAdapter, fake: FakeDiscord, base: str
) -> None:
    job = await imagine(fake, HOSTILE)
    async with httpx.AsyncClient() as client:
        await sign_in(client, await web_link(fake, base))
        pages = [
            await client.get(f"{base}/web/"),
            await client.get(f"{base}/web/job/{job}"),
            await client.get(f"{base}/web/spend"),
            await client.get(f"{base}/web/admin"),  # refused, and still under the policy
        ]
    for page in pages:
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script" not in csp
        assert "<script" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages[0].text  # the name and prompt
    assert "&lt;script&gt;" in pages[1].text


async def test_an_admin_sets_a_limit_that_usage_in_chat_reports_and_a_member_is_refused(
    bot: DiscordAdapter, fake: FakeDiscord, base: str
) -> None:
    owner = fake.guild.owner
    pool_scope = Identity("discord", str(fake.guild.id), "pool")
    pool_before = (await bot.core.ledger.usage(pool_scope)).workspace
    async with httpx.AsyncClient() as admin, httpx.AsyncClient() as member:
        await sign_in(admin, await web_link(fake, base, user=owner))
        await sign_in(member, await web_link(fake, base))
        form = await admin.get(f"{base}/web/admin")
        csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        wanted = {"member": str(fake.user.id), "daily": "0.40"}
        member_key = f"discord:{fake.guild.id}:{fake.user.id}"
        forged = await admin.post(f"{base}/web/admin/limits", data={**wanted, "csrf": "x"})
        missing = await admin.post(f"{base}/web/admin/limits", data=wanted)
        done = await admin.post(f"{base}/web/admin/limits", data={**wanted, "csrf": csrf})
        refused_page = await member.get(f"{base}/web/admin")
        member_csrf = (await member.get(f"{base}/web/")).text.split('value="', 1)[1].split('"')[0]
        refused_post = await member.post(
            f"{base}/web/admin/limits",
            data={"daily": "123", "csrf": member_csrf},
        )
    usage = await (await fake.slash_command("usage")).wait_for_message()
    pool_after = (await bot.core.ledger.usage(pool_scope)).workspace

    assert forged.status_code == 403 and missing.status_code == 403
    assert done.status_code == 200
    assert f"Limits of member {fake.user.id} set: daily $0.40." in done.text
    assert fields(usage)["Daily"].startswith("$0.00 of $0.40 spent")
    assert refused_page.status_code == 403 and "Only the workspace" in refused_page.text
    assert refused_post.status_code == 403
    audit = await bot.core.db.fetchall("SELECT actor, action, scope_key FROM admin_log")
    actors = {(row[0], row[2]) for row in audit}
    assert actors == {(f"discord:{fake.guild.id}:{owner.id}", member_key)}  # one change, audited
    assert [a.limit for a in pool_after] == [a.limit for a in pool_before]


async def test_sign_out_ends_the_session(bot: DiscordAdapter, fake: FakeDiscord, base: str) -> None:
    async with httpx.AsyncClient() as client:
        await sign_in(client, await web_link(fake, base))
        gallery = await client.get(f"{base}/web/")
        csrf = gallery.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        token = client.cookies["rpb_session"]
        out = await client.post(f"{base}/web/signout", data={"csrf": csrf})
    async with httpx.AsyncClient(cookies={"rpb_session": token}) as replay:
        after = await replay.get(f"{base}/web/")
    assert out.status_code == 303 and after.status_code == 401


async def test_web_says_how_to_enable_it_and_is_for_servers_only(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    async with running_bot(settings_for(tmp_path, runpod_fake, fake, public_url=None)):
        off = await (await fake.slash_command("web")).wait_for_message()
    (command,) = [c for c in fake.commands[fake.guild.id] if c["name"] == "web"]
    assert off.ephemeral and "web.public_url" in off.content
    assert command.get("contexts") == [0] or command.get("dm_permission") is False  # no DMs


async def test_the_cookie_is_secure_behind_https(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    settings = settings_for(tmp_path, runpod_fake, fake, public_url="https://bot.test")
    async with running_bot(settings) as adapter, running_page(adapter.core) as base:
        link = await web_link(fake, base)
        async with httpx.AsyncClient() as client:
            signed_in = await sign_in(client, link)
    assert "Secure" in signed_in.headers["set-cookie"]


async def test_run_again_starts_the_job_for_the_viewer_and_charges_it_once(
    bot: DiscordAdapter, fake: FakeDiscord, base: str, runpod_fake: FakeRunpod
) -> None:
    owner = fake.guild.owner
    original = await imagine(fake, "a fox to reroll")
    async with httpx.AsyncClient() as client:
        await sign_in(client, await web_link(fake, base, user=owner))
        page = await client.get(f"{base}/web/job/{original}")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        forged = await client.post(f"{base}/web/job/{original}/again", data={"csrf": "no"})
        started = await client.post(f"{base}/web/job/{original}/again", data={"csrf": csrf})
        new_job = started.headers["location"].rsplit("/", 1)[1]
        dm = fake.dm_channel(owner)
        in_dm = await fake.wait_for_message(lambda m: m.channel_id == dm.id, timeout=10)
        await bot.core.jobs.wait_idle(10)
        shown = await client.get(f"{base}/web/job/{new_job}")
    guild = str(fake.guild.id)
    owner_spend = (await bot.core.ledger.usage(member_of(fake, owner))).user[0]
    record = await bot.core.jobs.job(new_job, Community("discord", guild))

    assert forged.status_code == 403
    assert started.status_code == 303 and new_job != original
    assert record is not None and record.identity[2] == str(owner.id)
    assert record.state == "delivered" and record.cost is not None and record.cost > 0
    assert owner_spend.spent == record.cost  # charged once, to the viewer
    assert len(runpod_fake.jobs) == 2  # the original and the rerun reached Runpod
    assert in_dm.attachments and f"job {new_job}" in str(in_dm.embeds)  # also in chat, privately
    assert (
        shown.status_code == 200 and "a fox to reroll" in shown.text and "<img src=" in shown.text
    )


async def test_run_again_is_refused_when_the_viewer_has_no_quota_left(
    bot: DiscordAdapter, fake: FakeDiscord, base: str, runpod_fake: FakeRunpod
) -> None:
    original = await imagine(fake, "one more fox")
    member = member_of(fake)
    await bot.core.ledger.set_limits(member.user_key, QuotaLimits(daily_usd=Decimal(0)))
    async with httpx.AsyncClient() as client:
        await sign_in(client, await web_link(fake, base))
        page = await client.get(f"{base}/web/job/{original}")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        refused = await client.post(f"{base}/web/job/{original}/again", data={"csrf": csrf})
    assert refused.status_code == 400 and "daily" in refused.text.lower()
    assert len(runpod_fake.jobs) == 1


async def test_the_gallery_pages_newest_first_and_filters_by_model_and_member(
    bot: DiscordAdapter, fake: FakeDiscord, base: str
) -> None:
    made = [await imagine(fake, f"boat {n}") for n in range(PAGE_SIZE + 1)]
    dev = job_id_of(
        await result_of(
            await fake.slash_command(
                "imagine", {"prompt": "dev boat", "size": "512x512", "model": "flux-dev"}
            )
        )
    )
    owner = fake.guild.owner
    theirs = await imagine(fake, "owner boat", user=owner)
    async with httpx.AsyncClient() as client:
        await sign_in(client, await web_link(fake, base))
        first = await client.get(f"{base}/web/")
        second = await client.get(f"{base}/web/", params={"page": "2"})
        by_model = await client.get(f"{base}/web/", params={"model": "flux-dev"})
        by_member = await client.get(f"{base}/web/", params={"member": str(owner.id)})

    def shown(page: httpx.Response) -> list[str]:
        return [part.split('"', 1)[0] for part in page.text.split('href="/web/job/')[1:]]

    assert shown(first) == [theirs, dev, *reversed(made[-(PAGE_SIZE - 2) :])]
    assert shown(second) == list(reversed(made[:3]))
    assert 'rel="next"' in first.text and 'rel="prev"' in second.text
    assert 'rel="next"' not in second.text
    assert shown(by_model) == [dev] and shown(by_member) == [theirs]


async def test_results_of_nsfw_models_and_channels_are_not_on_the_page(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    settings = settings_for(tmp_path, runpod_fake, fake)
    settings = settings.model_copy(update={"models": {"flux-dev": {"nsfw": True}}})
    async with running_bot(settings) as adapter, running_page(adapter.core) as base:
        adult = fake.guild.nsfw_channel.id
        sent = await fake.slash_command(
            "imagine",
            {"prompt": "after dark", "size": "512x512", "model": "flux-dev"},
            channel_id=adult,
        )
        hidden = job_id_of(await result_of(sent))
        in_adult_channel = await imagine(fake, "a safe model at night", channel_id=adult)
        shown = await imagine(fake, "daylight")
        async with httpx.AsyncClient() as client:
            await sign_in(client, await web_link(fake, base))
            gallery = await client.get(f"{base}/web/")
            page = await client.get(f"{base}/web/job/{hidden}")
            channel_page = await client.get(f"{base}/web/job/{in_adult_channel}")
    assert shown in gallery.text and hidden not in gallery.text and "after dark" not in gallery.text
    assert in_adult_channel not in gallery.text
    assert page.status_code == 404 and channel_page.status_code == 404


async def test_admin_sees_spend_grants_credit_and_ends_a_members_sessions(
    bot: DiscordAdapter, fake: FakeDiscord, base: str
) -> None:
    await imagine(fake, "a fox to count")
    owner = fake.guild.owner
    member = member_of(fake)
    async with httpx.AsyncClient() as admin, httpx.AsyncClient() as them:
        await sign_in(admin, await web_link(fake, base, user=owner))
        await sign_in(them, await web_link(fake, base))
        page = await admin.get(f"{base}/web/admin")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        report = await admin.get(f"{base}/web/admin/report.csv")
        who = {"member": member.user, "csrf": csrf}
        no_reason = await admin.post(f"{base}/web/admin/grant", data={**who, "amount": "2"})
        granted = await admin.post(
            f"{base}/web/admin/grant", data={**who, "amount": "2", "reason": "contest"}
        )
        ended = await admin.post(f"{base}/web/admin/signout", data=who)
        after = await them.get(f"{base}/web/")
    usage = await bot.core.ledger.usage(member)

    assert "flux-schnell" in page.text and member.user in page.text  # by model, top spenders
    assert "<li>1 delivered</li>" in page.text
    assert report.headers["content-type"].startswith("text/csv")
    assert f"member,{member.user},1," in report.text and "model,flux-schnell,1," in report.text
    assert no_reason.status_code == 400 and "reason" in no_reason.text
    assert f"Granted $2.00 to member {member.user}." in granted.text
    audit_row = granted.text.split('<table class="audit">', 1)[1].split("</tr>")[1]
    # Named as the adapter saw them (/web, /imagine), the hostile name as text, with the ids.
    named = f"<td>guild-owner ({owner.id})</td><td>grant</td><td>{escape(HOSTILE)} ({member.user})"
    assert named in audit_row
    assert usage.user[0].limit == Decimal("3.00")  # $1.00 default + $2.00
    assert ended.status_code == 200 and after.status_code == 401


def csrf_of(page: httpx.Response) -> str:
    return page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]


async def test_owners_hide_a_result_or_all_of_theirs_and_others_stop_seeing_them(
    bot: DiscordAdapter, fake: FakeDiscord, base: str
) -> None:
    other = FakeUser("other")
    fake.guild.add_member(other)
    first = await imagine(fake, "first fox")
    second = await imagine(fake, "second fox")
    async with httpx.AsyncClient() as me, httpx.AsyncClient() as them:
        await sign_in(me, await web_link(fake, base))
        await sign_in(them, await web_link(fake, base, user=other))
        page = await me.get(f"{base}/web/job/{first}")
        await me.post(f"{base}/web/job/{first}/hide", data={"csrf": csrf_of(page), "hidden": "on"})
        their_gallery = await them.get(f"{base}/web/")
        their_view = await them.get(f"{base}/web/job/{first}")
        my_view = await me.get(f"{base}/web/job/{first}")
        their_page = await them.get(f"{base}/web/job/{second}")
        not_theirs = await them.post(
            f"{base}/web/job/{second}/hide", data={"csrf": csrf_of(their_page), "hidden": "on"}
        )
        spend = await me.get(f"{base}/web/spend")
        await me.post(f"{base}/web/spend/hide-mine", data={"csrf": csrf_of(spend), "hidden": "on"})
        their_gallery_after = await them.get(f"{base}/web/")

    assert second in their_gallery.text and first not in their_gallery.text
    assert their_view.status_code == 404
    assert my_view.status_code == 200 and "Hidden from the gallery." in my_view.text
    assert not_theirs.status_code == 403
    assert (
        second not in their_gallery_after.text
        and "No results here yet." in their_gallery_after.text
    )


async def test_web_hide_mine_in_chat_takes_a_members_results_off_the_page(
    bot: DiscordAdapter, fake: FakeDiscord, base: str
) -> None:
    job = await imagine(fake, "a shy fox")
    hidden = await (await fake.slash_command("web", {"action": "hide-mine"})).wait_for_message()
    async with httpx.AsyncClient() as admin:
        await sign_in(admin, await web_link(fake, base, user=fake.guild.owner))
        gallery = await admin.get(f"{base}/web/")
        shown_again = await (
            await fake.slash_command("web", {"action": "show-mine"})
        ).wait_for_message()
        gallery_after = await admin.get(f"{base}/web/")
    assert hidden.ephemeral and "no longer shown on the web page" in hidden.content
    assert job not in gallery.text
    assert "shown on the web page again" in shown_again.content and job in gallery_after.text


@pytest.mark.usefixtures("moved_clock")
async def test_my_spend_shows_each_limit_and_todays_bar_of_the_month_chart(
    bot: DiscordAdapter, fake: FakeDiscord, base: str
) -> None:
    job = await imagine(fake, "a counted fox")
    async with httpx.AsyncClient() as client:
        await sign_in(client, await web_link(fake, base))
        spend = await client.get(f"{base}/web/spend")
        csv_file = await client.get(f"{base}/web/spend.csv")
    zone = ZoneInfo(bot.core.settings.quotas.timezone)
    today = local_date(datetime.now(UTC), zone).isoformat()
    assert "<td>daily</td><td>$0.0006</td>" in spend.text and "$1.00" in spend.text
    assert f"<title>{today}: $0.0006</title>" in spend.text
    assert f'href="/web/job/{job}"' in spend.text
    assert csv_file.text.splitlines()[1].startswith(f"{job},flux-schnell,0.0006291456,settled,")


async def test_forms_sent_from_another_site_are_refused_and_use_nothing_up(
    bot: DiscordAdapter, fake: FakeDiscord, base: str
) -> None:
    link = await web_link(fake, base)
    async with httpx.AsyncClient() as client:
        cross = await client.post(link, headers={"Sec-Fetch-Site": "cross-site"})
        same = await client.post(link, headers={"Sec-Fetch-Site": "same-origin"})
    assert cross.status_code == 403 and "set-cookie" not in cross.headers
    assert same.status_code == 303  # the link was still unused


async def test_text_and_speech_results_show_an_excerpt_and_a_player(
    bot: DiscordAdapter, fake: FakeDiscord, base: str
) -> None:
    asked = await (
        await fake.slash_command("ask", {"prompt": "why is the sky blue?"})
    ).wait_for_message(
        lambda m: any(e.get("footer") for e in m.embeds) and not m.loading, timeout=10
    )
    said = await result_of(await fake.slash_command("speak", {"text": "hello there"}))
    async with httpx.AsyncClient() as client:
        await sign_in(client, await web_link(fake, base))
        gallery = await client.get(f"{base}/web/")
    ask_card = gallery.text.split(f'href="/web/job/{job_id_of(asked)}"', 1)[1].split("</li>")[0]
    speak_card = gallery.text.split(f'href="/web/job/{job_id_of(said)}"', 1)[1].split("</li>")[0]
    assert '<span class="excerpt">' in ask_card
    assert "<audio controls" in speak_card and 'src="/web/media/results/' in speak_card


async def test_a_member_who_leaves_the_server_loses_the_page_at_once(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    guild = FakeGuild(name="Home")
    async with FakeDiscord(guilds=[guild], privileged_intents=GUILD_MEMBERS_INTENT) as fake:
        with point_discord_py_at(fake):
            settings = settings_for(tmp_path, runpod_fake, fake)
            settings.discord.members_intent = True
            async with running_bot(settings) as adapter, running_page(adapter.core) as base:
                async with httpx.AsyncClient() as client:
                    await sign_in(client, await web_link(fake, base))
                    before = await client.get(f"{base}/web/")
                    await fake.remove_member(fake.user)  # GUILD_MEMBER_REMOVE

                    async def refused() -> bool:
                        return (await client.get(f"{base}/web/")).status_code == 401

                    await until(refused)
    assert before.status_code == 200


async def test_an_admin_who_loses_the_role_or_leaves_loses_the_admin_page(
    bot: DiscordAdapter, fake: FakeDiscord, base: str
) -> None:
    """No event needed (no privileged intent): the admin page asks Discord every time."""
    moderator = FakeUser("moderator")
    member = fake.guild.add_member(moderator, fake.guild.roles[0])
    async with httpx.AsyncClient() as client:
        await sign_in(client, await web_link(fake, base, user=moderator))
        as_admin = await client.get(f"{base}/web/admin")
        member.roles.clear()
        demoted = await client.get(f"{base}/web/admin")
        gallery = await client.get(f"{base}/web/")
        member.roles.append(fake.guild.roles[0])
        promoted_again = await client.get(f"{base}/web/admin")
        await fake.remove_member(moderator)
        gone = await client.get(f"{base}/web/admin")
        after = await client.get(f"{base}/web/")
    assert as_admin.status_code == 200
    assert demoted.status_code == 403 and 'href="/web/admin"' not in gallery.text
    assert promoted_again.status_code == 200
    assert gone.status_code == 401 and "no longer a member" in gone.text
    assert after.status_code == 401  # the session ended
