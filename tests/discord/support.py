"""Running the real Discord adapter (real discord.py, real core) against the fakes, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from PIL import Image

from adapters.discord import DiscordAdapter
from bot.app import open_core
from bot.config import Settings
from bot.ledger.quota import Identity
from tests.conftest import make_settings
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser, Message, SentInteraction
from tests.fakes.runpod import FakeJob, FakeRunpod

START_TIMEOUT = 10.0


def discord_settings(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord, **sections: dict[str, Any]
) -> Settings:
    discord = {
        "token": fake.bot_token,
        "api_base": fake.api_base,
        "gateway_url": fake.gateway_url,
        "guilds": [guild.id for guild in fake.guilds],
        **sections.pop("discord", {}),
    }
    return make_settings(tmp_path, runpod_fake, discord=discord, **sections)


@contextlib.asynccontextmanager
async def running_bot(settings: Settings) -> AsyncIterator[DiscordAdapter]:
    """The core and the Discord adapter, connected and done resuming; stopped at the end."""
    async with open_core(settings) as core:
        adapter = DiscordAdapter(core, guild_ready_timeout=0.05)
        task = asyncio.create_task(adapter.run(), name="discord-adapter")
        ready = asyncio.create_task(adapter.ready.wait())
        try:
            done, _ = await asyncio.wait(
                {task, ready}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                task.result()
            if ready not in done:
                raise TimeoutError("the Discord adapter never became ready")
            yield adapter
        finally:
            ready.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def member_of(
    fake: FakeDiscord, user: FakeUser | None = None, *, guild: FakeGuild | None = None
) -> Identity:
    """The ledger's name for `user` (default the fake's own) in `guild` (default its first)."""
    return Identity("discord", str((guild or fake.guild).id), str((user or fake.user).id))


def fields(message: Message) -> dict[str, str]:
    """The first embed's fields by name, as the user reads them; for a Components V2 card,
    its small print ("-# Seed 1 · Size 256×256 ...")."""
    if message.embeds:
        return {field["name"]: field["value"] for field in message.embeds[0].get("fields", [])}
    small = [line.removeprefix("-# ") for line in message.texts[-1].splitlines()]
    facts = [fact.partition(" ") for line in small for fact in line.split(" \N{MIDDLE DOT} ")]
    return {name: value for name, _, value in facts}


def job_id_of(message: Message) -> str:
    """The job id a result or progress message names (embed footer or `-# job` line)."""
    for embed in message.embeds:
        footer = embed.get("footer", {}).get("text", "")
        if footer.startswith("job "):
            return str(footer.split()[1])
    for button in message.buttons:
        if button.custom_id and button.custom_id.startswith("rpb:"):
            return button.custom_id.split(":")[2]
    raise LookupError(f"message {message.id} names no job")


def png(width: int = 64, height: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, "PNG")
    return buffer.getvalue()


def no_pings(message: Message, *, except_user: int | None = None) -> bool:
    """True when Discord would ping nobody for this message (or only `except_user`)."""
    allowed = message.allowed_mentions
    if allowed is None or allowed.get("parse") != [] or allowed.get("roles"):
        return False
    users = [int(u) for u in allowed.get("users", [])]
    return users == ([] if except_user is None else [except_user]) or users == []


async def result_of(sent: SentInteraction, timeout: float = 10.0) -> Message:
    """The message this interaction created that carries a finished job's embed or card."""
    return await reply_to(sent, lambda m: is_result(m) and not m.loading, timeout=timeout)


def is_result(message: Message) -> bool:
    """A result embed (its footer names the job) or a Components V2 card (its last line does)."""
    return any(e.get("footer") for e in message.embeds) or "-# job " in "".join(message.texts)


async def reply_to(
    sent: SentInteraction,
    predicate: Callable[[Message], bool] = lambda m: True,
    *,
    timeout: float = 10.0,
) -> Message:
    """A message created by this interaction's own response or follow-ups (for a button click,
    not the clicked message)."""
    return await sent.wait_for_message(
        lambda m: m.interaction_id == sent.id and predicate(m), timeout=timeout
    )


def jobs_of(runpod: FakeRunpod, endpoint_id: str) -> list[FakeJob]:
    return sorted(
        (job for job in runpod.jobs.values() if job.endpoint_id == endpoint_id),
        key=lambda job: job.created,
    )
