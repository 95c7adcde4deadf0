"""`python -m bot run` with Slack tokens in the environment serves the workspace (Socket Mode)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.conftest import API_KEY
from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_signing import slash_command
from tests.slack.support import ALICE, CHANNEL, block_texts, populate


async def test_python_m_bot_run_serves_slack_and_stops_cleanly(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    async with FakeSlack() as fake:
        populate(fake)
        env = {
            **os.environ,
            "RUNPOD_API_KEY": API_KEY,
            "SLACK_BOT_TOKEN": fake.bot_token,
            "SLACK_APP_TOKEN": fake.app_token,
            "BOT_SLACK__API_URL": fake.api_url,
            "BOT_RUNPOD__BASE_URL": runpod_fake.base_url,
            "BOT_STORAGE__DATABASE": str(tmp_path / "bot.db"),
            "BOT_HTTP__HOST": "127.0.0.1",
            "BOT_HTTP__PORT": "0",
            "BOT_SECURITY__ALLOW_PRIVATE_URLS": "true",
            "BOT_JOBS__PROGRESS_INTERVAL_S": "0.1",
            "BOT_CONFIG": str(tmp_path / "absent.toml"),
        }
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
