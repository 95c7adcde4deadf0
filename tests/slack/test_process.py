"""`python -m bot run` with Slack tokens in the environment serves the workspace (Socket Mode)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from tests.conftest import process_env
from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_signing import slash_command
from tests.slack.support import ALICE, CHANNEL, block_texts, populate, slack_env


async def test_python_m_bot_run_serves_slack_and_stops_cleanly(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    async with FakeSlack() as fake:
        populate(fake)
        env = process_env(
            tmp_path, runpod_fake, BOT_JOBS__PROGRESS_INTERVAL_S="0.1", **slack_env(fake)
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            command = slash_command(
                fake, "/imagine", "a tin robot", user_id=ALICE, channel_id=CHANNEL
            )
            await fake.socket_send("slash_commands", command, timeout=20)
            cards = await fake.wait_for(
                lambda: [m for m in fake.messages_in(CHANNEL) if "job_show" in str(m.blocks)],
                timeout=20,
            )
            assert block_texts(cards[0])[0] == f"🎨 <@{ALICE}> asked for: a tin robot"
            assert fake.uploads and fake.uploads[0].thread_ts == cards[0].ts
        finally:
            process.send_signal(signal.SIGTERM)
            output, errors = await asyncio.wait_for(process.communicate(), timeout=20)
        log = (output + errors).decode()
        assert process.returncode == 0, log
        assert "Traceback" not in log and fake.bot_token not in log and fake.app_token not in log
