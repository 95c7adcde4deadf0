"""`python -m bot try`, the terminal playground, as a real process against FakeRunpod."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from pathlib import Path

from PIL import Image

from tests.conftest import API_KEY
from tests.fakes.runpod import FakeRunpod

ROOT = Path(__file__).resolve().parents[2]  # the code under test, not an installed copy


async def bot(tmp_path: Path, fake: FakeRunpod, *args: str) -> tuple[int, str, str]:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[runpod]\nbase_url = "{fake.base_url}"\n[storage]\ndatabase = "{tmp_path / "bot.db"}"\n'
        "[http]\nport = 0\n[security]\nallow_private_urls = true\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "RUNPOD_API_KEY": API_KEY,
        "BOT_CONFIG": str(config),
        "PYTHONPATH": str(ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_try_writes_a_real_png_and_prints_the_cost(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    code, out, err = await bot(
        tmp_path, runpod_fake, "try", "flux-schnell", "a red fox", "--out", "fox.png"
    )
    assert code == 0, err
    with Image.open(tmp_path / "fox.png") as image:
        assert image.format == "PNG" and image.size == (1024, 1024)
    assert "cost: $0.0025165824" in err and "left today" in err
    assert API_KEY not in out + err


async def test_show_request_prints_a_curl_command_that_works(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    code, out, err = await bot(
        tmp_path,
        runpod_fake,
        "try",
        "flux-dev",
        "a fox",
        "-p",
        "width=512",
        "--show-request",
        "--out",
        "f.png",
    )
    assert code == 0, err
    curl = out.split("# curl\n", 1)[1].split("\n\n# Python", 1)[0]
    assert "$RUNPOD_API_KEY" in curl and API_KEY not in out
    # Run the printed command's request for real (with the key from the environment).
    words = shlex.split(curl.replace("\\\n", " "))
    body = words[words.index("-d") + 1]
    url = words[3]
    import httpx

    async with httpx.AsyncClient(trust_env=False) as http:
        answer = await http.post(url, content=body, headers={"Authorization": f"Bearer {API_KEY}"})
    assert answer.status_code == 200 and answer.json()["status"] == "IN_QUEUE"


async def test_a_failed_job_exits_1_and_says_nothing_was_charged(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.next_job(
        "black-forest-labs-flux-1-schnell", outcome="FAILED", error="NSFW content detected"
    )
    code, _, err = await bot(tmp_path, runpod_fake, "try", "flux-schnell", "a fox")
    assert code == 1
    assert "NSFW content detected" in err and "Nothing was charged" in err


async def test_bad_parameters_exit_2_without_a_traceback(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    code, _, err = await bot(
        tmp_path, runpod_fake, "try", "flux-schnell", "a fox", "-p", "width=100"
    )
    assert code == 2 and "width must be" in err and "Traceback" not in err
    assert runpod_fake.count("run") == 0


async def test_show_request_prints_the_seeds_runpod_received(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    code, out, err = await bot(
        tmp_path, runpod_fake, "try", "flux-schnell", "a fox", "--count", "2", "--show-request"
    )
    assert code == 0, err
    received = {job.input["seed"]: job.input for job in runpod_fake.jobs.values()}
    curl = out.split("# curl\n", 1)[1].split("\n\n# Python", 1)[0]
    words = shlex.split(curl.replace("\\\n", " "))
    sent = json.loads(words[words.index("-d") + 1])["input"]
    assert len(received) == 2 and received.pop(sent.get("seed")) == sent
    other = out.split("copy 2 sent the same with seed ", 1)[1].split(".", 1)[0]
    assert list(received) == [int(other)]
