"""Discord shards split across processes: each process connects only its `discord.shard_ids`,
and a job one process started is finished and delivered by another after a hand-over.

Discord sends a guild's events (commands, button clicks) to the one shard that guild hashes to,
so a guild's buttons reach the process that holds its shard; what "any process serves any
shard's jobs" means is the rest: a job handed over (a stop, a lapsed lease) is driven and
delivered by whichever process takes it, over REST, whatever shard its guild is on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.discord.client import ShardedBotClient
from bot.config import Settings
from tests.discord.support import discord_settings, running_bot
from tests.fakes.discord import FakeDiscord, FakeGuild, point_discord_py_at
from tests.fakes.runpod import FakeRunpod

SCHNELL = "black-forest-labs-flux-1-schnell"
# Snowflakes whose (id >> 22) % 2 is 0 and 1: Discord's shard formula for two shards.
ON_SHARD_0 = 300_000_000_000 << 22
ON_SHARD_1 = 300_000_000_001 << 22


async def test_two_processes_split_the_shards_and_finish_each_others_jobs(
    tmp_path: Path, runpod_fake: FakeRunpod, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_wait(self: object, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s between IDENTIFYs (Discord's limit); the fake has none."""

    monkeypatch.setattr(ShardedBotClient, "before_identify_hook", no_wait)
    runpod_fake.endpoints[SCHNELL].execution_time = 1.0
    guilds = [FakeGuild(name="zero", id=ON_SHARD_0), FakeGuild(name="one", id=ON_SHARD_1)]
    async with FakeDiscord(guilds=guilds) as fake:

        def process(shard_ids: list[int]) -> Settings:
            """One process's settings: the same database, its own shards of two."""
            return discord_settings(
                tmp_path,
                runpod_fake,
                fake,
                discord={"shards": 2, "shard_ids": shard_ids},
                workers={"heartbeat_s": 0.3, "lease_s": 2},
            )

        with point_discord_py_at(fake):
            async with running_bot(process([0])) as first:
                async with running_bot(process([1])) as second:
                    seen = [{g.id for g in bot.client.guilds} for bot in (first, second)]
                    answers = []
                    for guild in guilds:
                        sent = await fake.slash_command(
                            "models", {"kind": "image"}, guild_id=guild.id
                        )
                        answers.append(await sent.wait_for_message())
                    sent = await fake.slash_command(
                        "imagine",
                        {"prompt": "a patient fox", "size": "256x256"},
                        guild_id=ON_SHARD_1,
                    )
                    await sent.original(
                        lambda m: "queued at Runpod" in m.content or "generating" in m.content
                    )
                # The process holding shard 1 stopped mid-job and handed the job back; the
                # other takes it over (what `run` does every heartbeat) and posts the result.
                assert await first.core.jobs.recover() == 1
                posted = await fake.wait_for_message(
                    lambda m: m.interaction_id is None and bool(m.attachments), timeout=10
                )
                await first.core.jobs.wait_idle(10)

    assert sorted(tuple(i["shard"]) for i in fake.gateway.identifies) == [(0, 2), (1, 2)]
    assert seen == [{ON_SHARD_0}, {ON_SHARD_1}]
    assert all(a.ephemeral and "Flux Schnell" in a.embeds[0]["description"] for a in answers)
    assert posted.channel_id in {c.id for c in guilds[1].channels}
    assert posted.content.startswith(f"<@{fake.user.id}> your image is ready")
    assert runpod_fake.count("run") == 1
