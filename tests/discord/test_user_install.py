"""Discord user installs: commands offered for a member's own install, in DMs and group DMs,
and such use charged to the member's personal pool (`[quotas.personal]`, off by default).

Real discord.py against FakeDiscord: the registered commands are read back from the fake's
`PUT /applications/{id}/commands`, and interactions carry `authorizing_integration_owners`
as Discord sends them for a user install (`{"1": user id}`).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.discord import DiscordAdapter
from bot.ledger.quota import Identity, Scope
from tests.discord.support import discord_settings, result_of, running_bot
from tests.fakes.discord import FakeDiscord
from tests.fakes.runpod import FakeRunpod

PERSONAL = {"enabled": True, "daily_usd": None, "monthly_usd": "3.00"}


def global_bot(tmp_path: Path, runpod: FakeRunpod, fake: FakeDiscord, **sections: Any) -> Any:
    settings = discord_settings(tmp_path, runpod, fake, discord={"guilds": []}, **sections)
    return running_bot(settings)


async def test_commands_are_registered_for_user_installs_in_dms_and_group_dms(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    async with global_bot(tmp_path, runpod_fake, fake):
        registered = {c["name"]: c for c in fake.commands[None]}
    quota = registered.pop("quota")
    assert {"imagine", "ask", "cost", "help", "usage"} <= set(registered)
    for command in registered.values():
        assert (command["integration_types"], command["contexts"]) == ([0, 1], [0, 1, 2])
    assert (quota["integration_types"], quota["contexts"]) == ([0], [0])


async def test_a_user_install_in_a_dm_is_charged_to_the_personal_pool(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    quotas = {"personal": PERSONAL}
    async with global_bot(tmp_path, runpod_fake, fake, quotas=quotas) as bot:
        assert isinstance(bot, DiscordAdapter)
        sent = await fake.slash_command(
            "imagine", {"prompt": "a cat", "size": "256x256"}, dm=True, user_install=True
        )
        done = await result_of(sent)
        user = str(fake.user.id)
        personal = await bot.core.ledger.usage(Identity.personal("discord", user))
        shared_dm = await bot.core.ledger.usage(Identity("discord", "dm", user))
    assert done.attachments
    month = personal.workspace[-1]
    assert month.scope is Scope.WORKSPACE and month.limit == Decimal("3.00")
    assert month.spent > 0 and month.spent == personal.user[0].spent
    assert shared_dm.user[0].spent == 0 and all(a.spent == 0 for a in shared_dm.workspace)


async def test_personal_use_is_refused_while_the_operator_has_not_turned_it_on(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    async with global_bot(tmp_path, runpod_fake, fake):
        sent = await fake.slash_command("imagine", {"prompt": "a cat"}, dm=True, user_install=True)
        reply = await sent.wait_for_message()
    assert reply.ephemeral and "not turned on personal use" in reply.content
    assert "Nothing was charged" in reply.content and runpod_fake.count("run") == 0


async def test_nsfw_models_are_refused_in_a_personal_dm(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    """The bot's DM allows NSFW models for a server's install; personal use may be a group
    DM or a server that never chose the bot, so only an age-restricted channel counts."""
    models = {"flux-dev": {"nsfw": True}}
    async with global_bot(
        tmp_path, runpod_fake, fake, quotas={"personal": PERSONAL}, models=models
    ):
        sent = await fake.slash_command(
            "imagine", {"prompt": "a cat", "model": "flux-dev"}, dm=True, user_install=True
        )
        reply = await sent.wait_for_message()
    assert reply.ephemeral and "age-restricted" in reply.content
    assert runpod_fake.count("run") == 0


async def test_a_user_install_in_a_server_that_did_not_add_the_bot_is_personal_too(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    async with global_bot(tmp_path, runpod_fake, fake, quotas={"personal": PERSONAL}) as bot:
        assert isinstance(bot, DiscordAdapter)
        sent = await fake.slash_command(
            "imagine", {"prompt": "a cat", "size": "256x256"}, user_install=True
        )
        await result_of(sent)
        user = str(fake.user.id)
        personal = await bot.core.ledger.usage(Identity.personal("discord", user))
        server = await bot.core.ledger.usage(Identity("discord", str(fake.guild.id), user))
    assert personal.workspace[-1].spent > 0
    assert all(a.spent == 0 for a in server.user + server.workspace)


async def test_a_group_dm_is_charged_to_the_personal_pool_under_the_strictest_rules(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    """A group DM reaches the bot only through a member's own install (context 2, no guild):
    the job is answered through the interaction, charged to that member's personal pool, and
    an NSFW model is refused there as in a personal DM."""
    models = {"flux-dev": {"nsfw": True}}
    quotas = {"personal": PERSONAL}
    async with global_bot(tmp_path, runpod_fake, fake, quotas=quotas, models=models) as bot:
        assert isinstance(bot, DiscordAdapter)
        group = fake.group_dm()
        sent = await fake.slash_command(
            "imagine",
            {"prompt": "a cat", "size": "256x256", "model": "flux-schnell"},
            channel_id=group.id,
            user_install=True,
        )
        done = await result_of(sent)
        refused = await fake.slash_command(
            "imagine",
            {"prompt": "a cat", "model": "flux-dev"},
            channel_id=group.id,
            user_install=True,
        )
        reply = await refused.wait_for_message()
        personal = await bot.core.ledger.usage(Identity.personal("discord", str(fake.user.id)))
        shared_dm = await bot.core.ledger.usage(Identity("discord", "dm", str(fake.user.id)))
    assert sent.payload["context"] == 2 and "guild_id" not in sent.payload
    assert done.channel_id == group.id and done.attachments
    assert personal.workspace[-1].spent > 0
    assert all(a.spent == 0 for a in shared_dm.user + shared_dm.workspace)
    assert reply.ephemeral and "age-restricted" in reply.content
    assert runpod_fake.count("run") == 1
