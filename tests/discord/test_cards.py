"""Components V2 result cards: several images come as one container with a media gallery of
the message's own uploads (within the interaction's `attachment_size_limit`), text displays and
the job buttons; the fake Discord refuses V2 messages Discord would refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.discord.support import discord_settings, fields, job_id_of, result_of, running_bot
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_components import IS_COMPONENTS_V2
from tests.fakes.runpod import FakeRunpod

SCHNELL = "black-forest-labs-flux-1-schnell"
TWO_FOXES = {"prompt": "two foxes", "size": "512x512", "count": 2}


@pytest.mark.parametrize("discord_fake", [150_000], indirect=True)
async def test_a_gallery_card_keeps_its_images_within_the_upload_limit(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    runpod_fake.endpoints[SCHNELL].pad_bytes = 400_000  # each image over the limit as a PNG
    async with running_bot(discord_settings(tmp_path, runpod_fake, fake)):
        sent = await fake.slash_command("imagine", TWO_FOXES)
        done = await result_of(sent)

    assert done.flags & IS_COMPONENTS_V2 and not done.content and not done.embeds
    assert len(done.attachments) == 2
    assert all(
        a.size <= sent.upload_limit and a.filename.endswith(".jpg") for a in done.attachments
    )
    assert done.gallery == [f"attachment://{a.filename}" for a in done.attachments]
    assert any("posted as a smaller JPEG" in text for text in done.texts)
    (container,) = done.components
    assert container["type"] == 17
    assert [c["type"] for c in container["components"]][-3:] == [10, 10, 1]


async def test_after_the_token_expires_the_card_is_a_channel_message_naming_the_requester(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    runpod_fake.endpoints[SCHNELL].execution_time = 0.5
    async with running_bot(discord_settings(tmp_path, runpod_fake, fake)):
        sent = await fake.slash_command("imagine", {**TWO_FOXES, "size": "256x256"})
        await sent.original(lambda m: m.content.startswith("\N{HOURGLASS WITH FLOWING SAND}"))
        fake.expire_token(sent.token)
        posted = await fake.wait_for_message(
            lambda m: m.interaction_id is None and bool(m.attachments), timeout=10
        )

    job = job_id_of(posted)
    assert posted.flags & IS_COMPONENTS_V2 and not posted.content
    assert posted.texts[0] == f"<@{fake.user.id}> your image is ready."
    assert posted.allowed_mentions == {"parse": [], "users": [fake.user.id]}
    assert posted.nonce == job and posted.button(f"rpb:reroll:{job}")
    assert fields(posted)["Size"] == "256×256" and len(posted.gallery) == 2


async def post_v2(fake: FakeDiscord, components: list[dict[str, Any]], **body: Any) -> Any:
    url = f"{fake.api_base}/channels/{fake.guild.text_channel.id}/messages"
    auth = {"Authorization": f"Bot {fake.bot_token}"}
    payload = {"flags": IS_COMPONENTS_V2, "components": components, **body}
    async with aiohttp.ClientSession(headers=auth) as http, http.post(url, json=payload) as answer:
        return answer.status, await answer.json()


async def test_the_fake_refuses_v2_messages_discord_refuses(fake: FakeDiscord) -> None:
    text = {"type": 10, "content": "hello"}
    gallery = {"type": 12, "items": [{"media": {"url": "attachment://missing.png"}}]}
    with_content = await post_v2(fake, [text], content="not allowed")
    with_embed = await post_v2(fake, [text], embeds=[{"description": "no"}])
    nested = await post_v2(fake, [{"type": 17, "components": [{"type": 17, "components": []}]}])
    unknown_file = await post_v2(fake, [gallery])
    accepted = await post_v2(fake, [{"type": 17, "components": [text]}])

    for status, body in (with_content, with_embed, nested, unknown_file):
        assert (status, body["code"]) == (400, 50035)
    assert "content" in with_content[1]["errors"] and "embeds" in with_embed[1]["errors"]
    assert accepted[0] == 200
    (stored,) = fake.messages.values()
    assert stored.flags & IS_COMPONENTS_V2 and stored.texts == ["hello"]


async def test_a_card_shown_just_before_a_crash_is_not_posted_again(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    """Re-delivery finds the job named in the card's last line, as in an embed's footer."""
    settings = discord_settings(tmp_path, runpod_fake, fake)
    async with running_bot(settings) as bot:
        shown = await result_of(await fake.slash_command("imagine", TWO_FOXES))
        await bot.core.jobs.wait_idle(10)
        async with bot.core.db.transaction() as tx:  # as if it crashed before recording delivery
            await tx.execute("UPDATE jobs SET state = 'completed', notified = 0")
    async with running_bot(settings) as bot:
        await bot.core.jobs.wait_idle(10)

    assert shown.gallery and [m.id for m in fake.messages.values()] == [shown.id]
    assert fake.messages[shown.id].components == shown.components  # untouched


async def test_the_buttons_on_a_card_work(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    async with running_bot(discord_settings(tmp_path, runpod_fake, fake)):
        card = await result_of(await fake.slash_command("imagine", TWO_FOXES))
        click = await fake.click_button(card, f"rpb:reroll:{job_id_of(card)}")
        rerolled = await result_of(click)

    assert len(rerolled.gallery) == 2 and job_id_of(rerolled) != job_id_of(card)
    assert fields(rerolled)["Seed"] != fields(card)["Seed"]
