"""Socket Mode: the adapter connects out (apps.connections.open + websocket) and serves no HTTP."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_signing import app_mention, slash_command
from tests.slack_support import ALICE, CHANNEL, block_texts, populate, running_bot


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
