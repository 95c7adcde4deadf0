"""/quota for admins, sharding, and the bot started the way operators start it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.discord.client import ShardedBotClient
from tests.chart_support import TODAY_BAR, TOP_MODEL, checked_png, shows
from tests.conftest import API_KEY
from tests.discord.support import discord_settings, fields, member_of, result_of, running_bot
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeRole, FakeUser, point_discord_py_at
from tests.fakes.runpod import FakeRunpod

MANAGE_GUILD = 1 << 5


def quota_command(fake: FakeDiscord) -> dict[str, object]:
    return next(c for c in fake.commands[fake.guild.id] if c["name"] == "quota")


async def daily_limit(fake: FakeDiscord, user: FakeUser) -> str:
    sent = await fake.slash_command("usage", user=user)
    return fields(await sent.wait_for_message())["Daily"]


async def test_quota_is_for_server_managers_and_sets_limits(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    async with running_bot(discord_settings(tmp_path, runpod_fake, fake)):
        command = quota_command(fake)
        owner = fake.guild.owner
        sent = await fake.slash_command(
            "quota set", {"member": fake.user, "daily": "0.50", "monthly": "none"}, user=owner
        )
        done = await sent.wait_for_message()
        limit = await daily_limit(fake, fake.user)

    assert str(command["default_member_permissions"]) == str(MANAGE_GUILD)  # hidden from members
    assert done.ephemeral and done.content == (
        f"Limits of <@{fake.user.id}> set: daily $0.50, monthly no limit."
    )
    assert limit.startswith("$0.00 of $0.50 spent")


async def test_a_member_without_the_admin_role_is_refused(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    admins = FakeRole("Bot admins")
    guild = FakeGuild(roles=[admins])
    helper = FakeUser("helper")
    guild.add_member(helper, admins)
    async with FakeDiscord(guilds=[guild]) as fake:
        with point_discord_py_at(fake):
            settings = discord_settings(
                tmp_path, runpod_fake, fake, discord={"admin_role": "Bot admins"}
            )
            async with running_bot(settings) as bot:
                refused = await fake.slash_command(
                    "quota grant", {"member": fake.user, "amount": 5, "reason": "please"}
                )
                refusal = await refused.wait_for_message()
                granted = await fake.slash_command(
                    "quota grant",
                    {"member": fake.user, "amount": 2.5, "reason": "contest winner"},
                    user=helper,
                )
                grant = await granted.wait_for_message()
                usage = await bot.core.ledger.usage(member_of(fake, guild=guild))

    assert quota_command(fake)["default_member_permissions"] is None  # the role must see it
    assert refusal.ephemeral
    assert (
        refusal.content
        == "Only members with Manage Server or the Bot admins role can manage quotas."
    )
    assert grant.content == f"Granted $2.50 to <@{fake.user.id}>."
    assert usage.user[0].limit == Decimal("3.50")  # $1.00 default + $2.50 granted


@pytest.mark.usefixtures("moved_clock")
async def test_quota_reset_and_report(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    owner = fake.guild.owner
    async with running_bot(discord_settings(tmp_path, runpod_fake, fake)):
        await (
            await fake.slash_command("quota set", {"daily": "0.25"}, user=owner)
        ).wait_for_message()
        await result_of(await fake.slash_command("imagine", {"prompt": "a fox", "size": "512x512"}))
        report = await (
            await fake.slash_command("quota report", {"period": "day"}, user=owner)
        ).wait_for_message()
        reset = await (await fake.slash_command("quota reset", user=owner)).wait_for_message()
        again = await (await fake.slash_command("quota reset", user=owner)).wait_for_message()

    embed = report.embeds[0]
    assert report.ephemeral and embed["title"] == "Spending today"
    assert embed["description"] == "$0.0006 over 1 job(s)."
    shown = fields(report)
    assert shown["By member"] == f"<@{fake.user.id}> $0.0006 (1)"
    assert shown["By model"] == "`flux-schnell` $0.0006 (1)"
    assert embed["image"]["url"] == "attachment://spend-report.png"
    chart = checked_png(report.attachment("spend-report.png").data)
    assert shows(chart, TOP_MODEL) and shows(chart, TODAY_BAR)  # flux-schnell, top spender
    assert reset.content == "Limits of this server: back to the defaults."
    assert again.content == "Limits of this server: already on the defaults."


async def test_sharded_bot_answers_on_every_shard(
    tmp_path: Path, runpod_fake: FakeRunpod, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_wait(self: object, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s between IDENTIFYs (Discord's limit); the fake has none."""

    monkeypatch.setattr(ShardedBotClient, "before_identify_hook", no_wait)
    guilds = [FakeGuild(name=f"guild {i}") for i in range(4)]
    async with FakeDiscord(guilds=guilds) as fake:
        with point_discord_py_at(fake):
            settings = discord_settings(tmp_path, runpod_fake, fake, discord={"shards": 2})
            async with running_bot(settings) as bot:
                replies = []
                for guild in guilds:
                    sent = await fake.slash_command("models", {"kind": "image"}, guild_id=guild.id)
                    replies.append(await sent.wait_for_message())

    assert isinstance(bot.client, ShardedBotClient)
    assert sorted(tuple(i["shard"]) for i in fake.gateway.identifies) == [(0, 2), (1, 2)]
    assert all(i["intents"] == 1 | 1 << 9 | 1 << 12 for i in fake.gateway.identifies)
    assert all(r.ephemeral and "Flux Schnell" in r.embeds[0]["description"] for r in replies)


async def test_python_m_bot_run_brings_the_bot_online_with_only_the_tokens(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("BOT_") and not key.lower().endswith("_proxy")
    }
    env.update(
        DISCORD_TOKEN=fake.bot_token,
        RUNPOD_API_KEY=API_KEY,
        BOT_DISCORD__API_BASE=fake.api_base,
        BOT_DISCORD__GATEWAY_URL=fake.gateway_url,
        BOT_DISCORD__GUILDS=json.dumps([fake.guild.id]),
        BOT_RUNPOD__BASE_URL=runpod_fake.base_url,
        BOT_STORAGE__DATABASE=str(tmp_path / "bot.db"),
        BOT_HTTP__HOST="127.0.0.1",
        BOT_HTTP__PORT="0",
        BOT_SECURITY__ALLOW_PRIVATE_URLS="true",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        sent = await fake.slash_command(
            "imagine", {"prompt": "a fox", "size": "256x256"}, timeout=30
        )
        done = await result_of(sent, timeout=20)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 20)

    log = output.decode()
    assert done.attachments and process.returncode == 0, log
    assert f"commands synced to guild {fake.guild.id}" in log
    assert fake.bot_token not in log and API_KEY not in log
