"""Socket Mode: the adapter connects out (apps.connections.open + websocket) and serves no HTTP."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_signing import SlackSigner, app_mention, slash_command
from tests.slack.support import ALICE, CHANNEL, block_texts, populate, running_bot


async def test_a_slash_command_over_socket_mode_end_to_end(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    async with FakeSlack() as fake:
        populate(fake)
        async with running_bot(tmp_path, runpod_fake, fake, socket=True) as bot:
            assert bot.adapter.port is None, "Socket Mode must not open /slack/events"
            command = slash_command(
                fake, "/imagine", "a paper boat --seed 3", user_id=ALICE, channel_id=CHANNEL
            )
            ack = await fake.wait_for_ack(await fake.socket_send("slash_commands", command))
            assert ack.payload is None  # acked at once, nothing shown yet
            (card,) = await bot.wait(bot.finished_cards)
            assert block_texts(card)[0] == f"🎨 <@{ALICE}> asked for: a paper boat"
            assert "seed 3" in block_texts(card)[1]
            (upload,) = fake.uploads
            assert upload.thread_ts == card.ts and upload.data.startswith(b"\x89PNG")

            mention = app_mention(
                fake, f"<@{fake.bot_user_id}> imagine a kite", user_id=ALICE, channel_id=CHANNEL
            )
            for attempt in (0, 1):  # Slack redelivers with retry_attempt; one answer
                envelope = await fake.socket_send("events_api", mention, retry_attempt=attempt)
                await fake.wait_for_ack(envelope)
            await bot.wait(lambda: len(bot.finished_cards()) == 2)
            await bot.idle()
            assert len(runpod_fake.jobs) == 2 and len(bot.cards()) == 2
        assert fake.calls_to("apps.connections.open") and fake.socket_connections == 0


async def test_socket_mode_with_file_links_serves_no_event_route(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    """In Socket Mode there is no signing secret, so an HTTP event route would be forgeable."""
    async with FakeSlack() as fake:
        populate(fake)
        slack = {"public_url": "https://bot.example.com"}
        async with running_bot(tmp_path, runpod_fake, fake, socket=True, slack=slack) as bot:
            assert bot.adapter.port is not None  # listening for the file links only
            command = slash_command(fake, "/imagine", "a cat", user_id=ALICE, channel_id=CHANNEL)
            reply = await SlackSigner("").post_command(bot.url, command)
            assert reply.status in (404, 405)
            async with aiohttp.ClientSession() as session:
                health = f"http://127.0.0.1:{bot.adapter.port}/slack/health"
                async with session.get(health) as response:
                    assert response.status == 200
            await bot.idle()
            assert runpod_fake.count("run") == 0
