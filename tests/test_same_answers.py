"""`/cost`, `/show` and `/quota show` give the same facts on Discord, Slack and the terminal.

Each surface words them in its own idiom; all three answer from the same core queries on one
database, so a member's allowance, an estimate, whether it is too much, and a past result agree.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from bot.cli.main import main
from bot.cli.playground import local_identity
from tests.conftest import API_KEY
from tests.discord.support import discord_settings, fields, job_id_of, result_of, running_bot
from tests.fakes.discord import FakeDiscord
from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack
from tests.slack.support import BOB, BOSS, button_value, populate
from tests.slack.support import running_bot as running_slack_bot

pytestmark = pytest.mark.usefixtures("moved_clock")

ANSWER = "A fox is a small wild dog."
LIMIT = "0.03"
USD = re.compile(r"\$(\d+\.\d+)")


def amounts(text: str) -> list[str]:
    """Every dollar amount in a reply, to cents: the facts, whatever the wording around them."""
    return [f"{float(a):.2f}" for a in USD.findall(text)]


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.fixture
def cli_config(tmp_path: Path, runpod_fake: FakeRunpod, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[runpod]\nbase_url = "{runpod_fake.base_url}"\n'
        f'[storage]\ndatabase = "{tmp_path / "bot.db"}"\n'
        '[jobs]\nconfirm_above_usd = "5.00"\n[security]\nallow_private_urls = true\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("RUNPOD_API_KEY", API_KEY)
    monkeypatch.setenv("BOT_CONFIG", str(config))
    return config


async def test_cost_show_and_quota_agree_on_every_surface(
    tmp_path: Path,
    runpod_fake: FakeRunpod,
    cli_config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runpod_fake.endpoints["qwen3-32b-awq"].reply = ANSWER
    facts: dict[str, dict[str, Any]] = {}

    async with FakeDiscord() as fake:
        async with running_bot(discord_settings(tmp_path, runpod_fake, fake)) as bot:
            owner, member = fake.guild.owner, fake.user
            await (
                await fake.slash_command(
                    "quota set", {"member": member, "daily": LIMIT}, user=owner
                )
            ).wait_for_message()
            shown = await (
                await fake.slash_command("quota show", {"member": member}, user=owner)
            ).wait_for_message()
            priced = await (
                await fake.slash_command(
                    "cost imagine", {"prompt": "a fox", "model": "flux-dev", "count": 2}
                )
            ).wait_for_message()
            asked = await result_of(await fake.slash_command("ask", {"prompt": "what is a fox?"}))
            job = job_id_of(asked)
            await bot.core.jobs.wait_idle(10)
            again = await result_of(await fake.slash_command("show", {"job_id": job}))
        quota, cost = fields(shown), fields(priced)
        facts["discord"] = {
            "daily": amounts(quota["Daily"])[:2],
            "estimate": amounts(cost["Estimate"]),
            "left": cost["Left"],
            "too much": "Too much" in cost,
            "shown": ANSWER in again.content and job in str(again.embeds),
        }
        discord_job = (job, f"discord:{fake.guild.id}")

    async with FakeSlack() as slack_fake:
        populate(slack_fake)
        async with running_slack_bot(tmp_path, runpod_fake, slack_fake) as slack:
            await slack.command("/quota", f"set <@{BOB}|bob> --daily {LIMIT}", user=BOSS)
            await slack.command("/quota", f"show <@{BOB}|bob>", user=BOSS)
            said = await slack.wait(
                lambda: len(slack.ephemerals(BOSS)) == 2 and slack.ephemerals(BOSS)
            )  # the two answers may arrive in either order
            shown_text = next(m.text for m in said if "• today" in m.text)
            await slack.command("/cost", "imagine a fox --model flux-dev --count 2", user=BOB)
            (cost_text,) = [m.text for m in await slack.wait(lambda: slack.ephemerals(BOB))]
            await slack.command("/ask", "what is a fox?")
            (card,) = await slack.wait(slack.finished_cards)
            job = button_value(card, "job_show")
            await slack.idle()
            before = len(slack.ephemerals())
            await slack.command("/show", job)
            answers = await slack.wait(
                lambda: len(slack.ephemerals()) > before and slack.ephemerals()
            )
            show_text = answers[-1].text
        daily = next(line for line in shown_text.splitlines() if line.startswith("• today"))
        facts["slack"] = {
            "daily": amounts(daily)[:2],
            "estimate": amounts(cost_text)[:1],
            "left": next(line for line in cost_text.splitlines() if "left" in line)[2:],
            "too much": "more than is left" in cost_text,
            "shown": ANSWER in show_text and job in show_text,
        }
        slack_job = (job, f"slack:{slack_fake.team_id}")

    me = local_identity().user_key
    await cli(capsys, "quota", "set", me, "--daily", LIMIT)
    shown_text = await cli(capsys, "quota", "show", me)
    cost_text = await cli(capsys, "cost", "flux-dev", "--count", "2")
    daily = next(line for line in shown_text.splitlines() if line.strip().startswith("daily"))
    facts["cli"] = {
        "daily": amounts(daily)[:2],
        "estimate": amounts(cost_text)[:1],
        "left": next(line for line in cost_text.splitlines() if line.startswith("left: "))[6:],
        "too much": "more than is left" in cost_text,
        "shown": True,
    }
    for job, workspace in (discord_job, slack_job):
        out = await cli(capsys, "show", job, "--workspace", workspace)
        facts["cli"]["shown"] &= ANSWER in out and job in out

    expected = {
        "daily": ["0.00", LIMIT],  # spent, of the limit
        "estimate": ["0.04"],
        "left": f"${LIMIT} left today",
        "too much": True,
        "shown": True,
    }
    assert facts == {"discord": expected, "slack": expected, "cli": expected}
