"""The reconciliation with Runpod's bill on the admin page, over HTTP, for the bot's operators only.

Runpod bills the whole API key (every workspace together), so only a member named in
`web.operators` sees it; other admins see a note, and not one figure of the bill.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import time_machine
from pydantic import ValidationError

from bot.config import WebSettings
from tests.conftest import API_KEY
from tests.discord.support import discord_settings, running_bot
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser, point_discord_py_at
from tests.fakes.discord_gateway import FakeRole
from tests.fakes.runpod import FakeRunpod
from tests.fakes.runpod_billing import FakeRunpodBilling
from tests.web.support import PUBLIC_URL, imagine, running_page, sign_in, web_link

MANAGE_GUILD = 1 << 5
JOB_COST = Decimal("0.0006291456")  # a 512x512 flux-schnell image on the fake Runpod
OTHER_SPEND = "7.77"  # billed yesterday to the same key by other software


@pytest.fixture
def midday() -> Iterator[datetime]:
    """Noon UTC of today, ticking: the jobs settle on the UTC day the fake bill records them."""
    noon = datetime.combine(datetime.now(UTC).date(), time(12), UTC)
    with time_machine.travel(noon, tick=True):
        yield noon


@pytest.fixture
async def billing() -> AsyncIterator[FakeRunpodBilling]:
    async with FakeRunpodBilling(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def fake(midday: datetime) -> AsyncIterator[FakeDiscord]:
    guilds = [
        FakeGuild(name="Home", roles=[FakeRole("moderators", MANAGE_GUILD)]),
        FakeGuild(name="Elsewhere"),
    ]
    async with FakeDiscord(guilds=guilds) as fake:
        with point_discord_py_at(fake):
            yield fake


@pytest.fixture
async def base(
    tmp_path: Path,
    runpod_fake: FakeRunpod,
    fake: FakeDiscord,
    billing: FakeRunpodBilling,
    db_place: Path | str,
) -> AsyncIterator[str]:
    """The bot and its page; the owner of Home runs the bot (the only operator)."""
    home = fake.guilds[0]
    settings = discord_settings(
        tmp_path,
        runpod_fake,
        fake,
        database=db_place,
        runpod={"rest_url": billing.rest_url, "backoff_base_s": 0.01},
        web={"public_url": PUBLIC_URL, "operators": [f"discord:{home.id}:{home.owner.id}"]},
    )
    async with running_bot(settings) as adapter, running_page(adapter.core) as url:
        yield url


async def charge_both_workspaces(fake: FakeDiscord, billing: FakeRunpodBilling) -> None:
    """One job in each server, billed today; and other software's spend billed yesterday."""
    home, elsewhere = fake.guilds
    await imagine(fake, "home fox", guild_id=home.id)
    await imagine(fake, "elsewhere owl", guild_id=elsewhere.id)
    now = datetime.now(UTC)
    billing.spend(now, 2 * JOB_COST)
    billing.spend(now - timedelta(days=1), OTHER_SPEND)


def row_of(page: str, day: datetime) -> str:
    return page.split(f"<td>{day.date().isoformat()}</td>", 1)[1].split("</tr>", 1)[0]


async def test_an_operator_sees_the_ledger_of_every_workspace_against_runpods_bill(
    fake: FakeDiscord, billing: FakeRunpodBilling, base: str, midday: datetime
) -> None:
    await charge_both_workspaces(fake, billing)
    home = fake.guilds[0]
    async with httpx.AsyncClient() as operator:
        await sign_in(operator, await web_link(fake, base, user=home.owner))
        page = await operator.get(f"{base}/web/admin")
        csv_file = await operator.get(f"{base}/web/admin/reconcile.csv")

    assert page.status_code == 200
    today, yesterday = row_of(page.text, midday), row_of(page.text, midday - timedelta(days=1))
    # Both servers' jobs on the ledger's side ($0.0013), equal to what Runpod billed today.
    assert today == "<td>$0.0013</td><td>$0.0013</td><td>$0.00</td><td>equal</td>"
    assert yesterday.startswith("<td>$0.00</td><td>$7.77</td><td>+$7.77</td><td>ledger lower")
    assert "<th>Total</th><th>$0.0013</th><th>$7.77</th><th>+$7.77</th>" in page.text
    assert "Runpod bills the whole API key" in page.text
    assert billing.requests[-1]["bucketSize"] == "day"
    lines = csv_file.text.splitlines()
    assert lines[0] == "day_utc,ledger_usd,runpod_usd,difference_usd,verdict"
    assert len(lines) == 1 + 14
    assert lines[-1] == f"{midday.date().isoformat()},0.0012582912,0.0012582912,0.0000000000,equal"


async def test_other_admins_see_no_figure_of_the_bill(
    fake: FakeDiscord, billing: FakeRunpodBilling, base: str
) -> None:
    """An admin of the operator's own server who is not an operator, and another server's owner."""
    await charge_both_workspaces(fake, billing)
    home, elsewhere = fake.guilds
    moderator = FakeUser("moderator")
    home.add_member(moderator, home.roles[0])
    pages = {}
    for name, where in {
        "moderator": {"user": moderator},
        "elsewhere": {"user": elsewhere.owner, "guild_id": elsewhere.id},
    }.items():
        async with httpx.AsyncClient() as admin:
            await sign_in(admin, await web_link(fake, base, **where))
            pages[name] = await admin.get(f"{base}/web/admin")
            pages[f"{name} csv"] = await admin.get(f"{base}/web/admin/reconcile.csv")

    for name in ("moderator", "elsewhere"):
        page = pages[name]
        assert page.status_code == 200, name
        assert "shown only to the bot's operators" in page.text, name
        assert OTHER_SPEND not in page.text and "Runpod billed" not in page.text, name
        refused = pages[f"{name} csv"]
        assert refused.status_code == 403 and OTHER_SPEND not in refused.text, name
    assert billing.requests == []  # the bill was not even read for them


async def test_the_page_says_so_when_runpods_billing_api_is_down(
    fake: FakeDiscord, billing: FakeRunpodBilling, base: str
) -> None:
    home = fake.guilds[0]
    billing.fail_next(502, count=20)  # every retry meets the outage (an HTML page from a proxy)
    async with httpx.AsyncClient() as operator:
        await sign_in(operator, await web_link(fake, base, user=home.owner))
        page = await operator.get(f"{base}/web/admin")
        csv_file = await operator.get(f"{base}/web/admin/reconcile.csv")

    assert page.status_code == 200
    assert "The reconciliation is not available now:" in page.text
    assert "is failing (HTTP 502); try again later" in page.text
    assert "cloudflare" not in page.text and "Traceback" not in page.text
    assert 'id="set-limits"' in page.text and "This workspace's pool" in page.text
    assert csv_file.status_code == 503 and "HTTP 502" in csv_file.text


@pytest.mark.parametrize("key", ["discord:123", "slack::U0456", "123456789012345678"])
def test_an_operator_key_that_names_no_member_is_refused(key: str) -> None:
    with pytest.raises(ValidationError, match="is not a member key like discord:GUILD:USER"):
        WebSettings(operators=[key])
