"""The floor under `bench.many_jobs`: a job's three HTTP requests with nothing else around them.

    python -m bench.floor [--jobs 1000] [--exec-s 5] [--runs 3]

Each job is what the bot sends Runpod for a Flux Schnell image, through bare aiohttp (the
client under the bot's Runpod calls) against the same FakeRunpod process: `POST /run`, long
polls of `GET /status-sync/{id}` until the job is final, then `GET` of the result's file. No
job engine, no ledger, no job table, no logging, no checks of addresses or files: what any
Python client of these routes pays at least. Its CPU per job, as a ratio to the calibration
loop measured in the same process, is the floor the bot's own figure sits on; the bot's
overhead is the difference. Prints each run and the median.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench.common import API_KEY, FakeProcess, calibration_ms

ENDPOINT = "black-forest-labs-flux-1-schnell"
WAIT_MS = 20_000  # the bot's long poll (`runpod.long_poll_s`)


async def one_job(
    api: aiohttp.ClientSession, polls: aiohttp.ClientSession, base: str, n: int
) -> int:
    """Run one job to its file; return the file's size."""
    body = {"input": {"prompt": f"a lighthouse at dusk, take {n}", "width": 1024, "height": 1024}}
    async with api.post(f"{base}/{ENDPOINT}/run", json=body) as response:
        job_id = (await response.json())["id"]
    while True:
        async with polls.get(
            f"{base}/{ENDPOINT}/status-sync/{job_id}", params={"wait": WAIT_MS}
        ) as response:
            state: dict[str, Any] = await response.json()
        if state["status"] not in ("IN_QUEUE", "IN_PROGRESS"):
            break
    if state["status"] != "COMPLETED":
        raise SystemExit(f"job {job_id} ended {state['status']}")
    async with api.get(state["output"]["image_url"]) as response:
        return len(await response.read())


def _session(limit: int) -> aiohttp.ClientSession:
    """As the bot's pools are set up (`bot.runpod.transport`): no cookies, no proxy lookup."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=15.0),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"Authorization": f"Bearer {API_KEY}"},
        trust_env=False,
    )


async def run(jobs: int, exec_s: float) -> tuple[float, float]:
    """CPU ms per job and the calibration loop's ms, measured in this process."""
    async with FakeProcess() as fake:
        await fake.endpoint(ENDPOINT, queue_s=0.0, exec_s=exec_s)
        async with _session(100) as api, _session(jobs) as polls:
            await one_job(api, polls, fake.base_url, -1)  # warm-up: pools, first connections
            calibration = calibration_ms()
            cpu = time.process_time()
            sizes = await asyncio.gather(
                *(one_job(api, polls, fake.base_url, n) for n in range(jobs))
            )
            cpu = time.process_time() - cpu
            calibration = min(calibration, calibration_ms())
    if not all(sizes):
        raise SystemExit("a job's file was empty")
    return cpu / jobs * 1000, calibration


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--exec-s", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"floor: {args.jobs} jobs x 3 requests, bare aiohttp; load {os.getloadavg()[0]:.2f}")
    ratios = []
    for _ in range(args.runs):
        per_job_ms, calibration = asyncio.run(run(args.jobs, args.exec_s))
        ratios.append(per_job_ms / calibration)
        print(
            f"  CPU per job {per_job_ms:6.2f} ms, calibration {calibration:6.2f} ms,"
            f" ratio {ratios[-1]:.3f}",
            flush=True,
        )
    print(f"median ratio {statistics.median(ratios):.3f} x calibration")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
