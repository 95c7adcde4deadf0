"""SIGKILL the bot at random moments over a stream of jobs; every job must still end right.

Each round starts `python -m bot try` (a real process: the same core the chat bot runs) and
kills it after a random delay, counted in every other round from the process's start (start-up
and admission included) and otherwise from the moment it says it accepted the job: on a loaded
machine start-up alone can outlast every delay, and no job would be accepted at all. The next
process first resumes what the last one left. At the end,
`python -m bot resume` finishes the rest. Then, for every job the bot accepted: it was delivered
once (its file written once) and charged once at the price Runpod billed, or it was released,
charged nothing, and the user was told. The ledger's total equals the sum of delivered costs.

`pytest -m slow tests/jobs/test_crash.py` runs the long version (100 kills).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import API_KEY
from tests.fakes.runpod import FakeRunpod

FLUX = "black-forest-labs-flux-1-schnell"


async def crash_loop(tmp_path: Path, fake: FakeRunpod, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    fake.endpoints[FLUX].queue_delay = lambda _: rng.uniform(0.0, 0.3)
    fake.endpoints[FLUX].execution_time = lambda _: rng.uniform(0.1, 0.8)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[runpod]\nbase_url = "{fake.base_url}"\nmax_retries = 2\n'
        f'[storage]\ndatabase = "{tmp_path / "bot.db"}"\n'
        "[jobs]\nprogress_interval_s = 0.2\n"
        "[workers]\nheartbeat_s = 0.2\nlease_s = 1\n"  # a killed `try`'s jobs free up fast
        '[http]\nport = 0\nhost = "127.0.0.1"\n'
        "[quotas]\ndaily_usd = 100\nmonthly_usd = 1000\n"
        "[security]\nallow_private_urls = true\n",  # FakeRunpod serves results on 127.0.0.1
        encoding="utf-8",
    )
    env = {**os.environ, "RUNPOD_API_KEY": API_KEY, "BOT_CONFIG": str(config)}
    outputs = tmp_path / "out"
    outputs.mkdir()
    logs: list[str] = []
    for number in range(rounds):
        args = ["try", FLUX, f"fox number {number}", "-p", "width=256", "-p", "height=256",
                "--out", str(outputs / f"fox-{number}.png")]  # fmt: skip
        after_accepted = number % 2 == 1
        logs.append(
            await run_bot(
                args, env, kill_after=rng.uniform(0.2, 2.5), after_accepted=after_accepted
            )
        )
    logs.append(await run_bot(["resume"], env, kill_after=None))
    check(tmp_path / "bot.db", outputs, "\n".join(logs), fake)


async def run_bot(
    args: list[str], env: dict[str, str], *, kill_after: float | None, after_accepted: bool = False
) -> str:
    """The process's output; killed `kill_after` seconds after its start, or after the line
    saying it accepted the job (`job <id>: estimated $x`) when `after_accepted`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    early = b""
    if after_accepted:
        async with asyncio.timeout(60):
            while line := await process.stderr.readline():
                early += line
                if b": estimated " in line:
                    break
    try:
        output, errors = await asyncio.wait_for(process.communicate(), timeout=kill_after or 60)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):  # it ended by itself at that moment
            process.send_signal(signal.SIGKILL)
        output, errors = await process.communicate()
    else:
        assert b"Traceback" not in early + errors, (early + errors).decode()
    return (output + early + errors).decode()


def check(database: Path, outputs: Path, log: str, fake: FakeRunpod) -> None:
    with sqlite3.connect(database) as db:
        jobs = db.execute("SELECT id, state, cost, notified, copies FROM jobs").fetchall()
        charged_units = db.execute("SELECT COALESCE(SUM(charged), 0) FROM holds").fetchone()[0]
        open_holds = db.execute("SELECT COUNT(*) FROM holds WHERE state = 'held'").fetchone()[0]
    assert jobs, "no job was accepted at all"
    delivered_total = Decimal(0)
    for job_id, state, cost, notified, copies in jobs:
        assert state in ("delivered", "failed"), f"job {job_id} left in state {state}"
        assert notified == 1, f"job {job_id} ended ({state}) without the user being told"
        if state == "delivered":
            delivered_total += Decimal(cost)
            runpod_ids = re.findall(r'"runpod_id": "([^"]+)"', copies)
            billed = sum(fake.jobs[r].cost or Decimal(0) for r in runpod_ids)
            assert Decimal(cost) == billed, f"job {job_id} charged {cost}, Runpod billed {billed}"
        else:
            assert Decimal(cost or 0) == 0
    assert open_holds == 0, "a hold outlived its job"
    assert Decimal(charged_units) / Decimal(10**10) == delivered_total
    # A re-delivery after a kill finds its identical file and writes nothing: "wrote" is said
    # at most once per result (a kill right after the write can leave it unsaid).
    written = re.findall(r"wrote (\S+)", log)
    assert len(written) == len(set(written)), "a result was delivered twice"
    delivered = sum(1 for _, state, *_ in jobs if state == "delivered")
    assert delivered == len(list(outputs.glob("fox-*.png")))


@pytest.mark.timeout(300)  # 21 process start-ups: a minute on a loaded 2-core machine, or more
async def test_sigkill_at_random_moments_loses_and_repeats_nothing(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    await crash_loop(tmp_path, runpod_fake, rounds=20, seed=1234)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_sigkill_100_times(tmp_path: Path, runpod_fake: FakeRunpod) -> None:
    await crash_loop(tmp_path, runpod_fake, rounds=100, seed=99)
