"""Our Runpod client against the official `runpod` SDK: delay after completion, requests per job.

    pip install -e '.[test,bench]'
    python -m bench.client_vs_sdk                  # 40 jobs per class, about 3 minutes
    python -m bench.client_vs_sdk --per-class 10   # a quicker, noisier look

Every mode runs the same jobs, concurrently, against one FakeRunpod in its own process
(`bench.common`): per class (about 2 s, 10 s and 60 s) a seeded table of arrival times, queue
delays and execution times drawn from log-normal spreads; each job carries its times in its
prompt, so the fake runs job i of every mode for exactly as long. Each mode has its own fake
endpoint, so a mode's requests are counted apart (per job id) and /status-sync can be missing on
some endpoints only.

Modes:
- SDK: `runpod.AsyncioEndpoint.run` + `AsyncioJob.output(timeout=...)` on an aiohttp session.
- SDK run_sync: the SDK's blocking `runpod.Endpoint.run_sync` (`POST /runsync`, which answers
  when the job ends, up to 90 s), each call on a thread of its own. One request per job, but it
  holds a thread (and a connection) per job for the job's whole run, and the caller learns the
  job's id only when it ends, so a bot that crashes meanwhile cannot resume the job (it runs on,
  billed, with nobody to deliver it). That is why the bot does not use it.
- long-poll: `RunpodClient.run` + `wait()`, the default (`/status-sync?wait=`).
- polling: the same, on an endpoint without `/status-sync`: `wait()` falls back to /status polls.
- webhook: the job engine itself (`JobService` + `Listener` on 127.0.0.1), `runpod.webhook_url`
  set, on an endpoint without `/status-sync` so the webhook, not a long poll, brings the result
  (the /status fallback keeps running as the backstop, as it does in production).

"Seen" is when the caller holds the final job: for the clients, when `output()`/`wait()`
returns; for the engine, when it starts downloading the result (it then holds the output URL:
the same point in the job as the clients' return). The engine's full path to the user
(download, charge, delivery) is printed too, with and without the download.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from bench.client_modes import (
    ENDPOINTS,
    JOB_TIMEOUT_S,
    MODES,
    Draw,
    JobRunner,
    Seen,
    client_mode,
    run_sync_mode,
    sdk_mode,
    webhook_mode,
)
from bench.common import API_KEY, FakeProcess, ServerJob, forget_bot_settings, median, percentile
from bot.runpod.client import RunpodClient

CLASSES = (("2s", 2.0), ("10s", 10.0), ("60s", 60.0))
EXEC_SIGMA = 0.35  # log-normal sigma of execution times: 10 s class p5-p95 about 5.6-17.8 s
QUEUE_MEDIAN_S, QUEUE_SIGMA = 0.4, 1.0  # queue delay: median 0.4 s, p95 about 2 s
ARRIVALS_S = 10.0  # jobs arrive spread over this long, not all in one instant
MODE_SHIFT_S = 0.05  # mode k starts its jobs k * this later, so modes do not move in lockstep
RTT_PROBE_S = 0.5


def draw_jobs(seed: int, per_class: int, classes: Sequence[tuple[str, float]]) -> list[Draw]:
    rng = random.Random(seed)
    return [
        Draw(
            cls,
            i,
            rng.uniform(0, ARRIVALS_S),
            rng.lognormvariate(math.log(QUEUE_MEDIAN_S), QUEUE_SIGMA),
            rng.lognormvariate(math.log(center), EXEC_SIGMA),
        )
        for cls, center in classes
        for i in range(per_class)
    ]


# --- running and reporting -------------------------------------------------------------------


@dataclass
class Probe:
    """Round trips of a cheap request (GET /health) measured while the bench runs."""

    samples: list[float] = field(default_factory=list)

    async def run(self, base_url: str, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(trust_env=False) as http:
            rp = RunpodClient(http, base_url=base_url, api_key=API_KEY)
            while not stop.is_set():
                start = time.monotonic()
                await rp.health("bench-rtt")
                self.samples.append(time.monotonic() - start)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RTT_PROBE_S)


async def run_mode(runner: JobRunner, draws: Sequence[Draw], t0: float) -> list[Seen]:
    async def at_arrival(draw: Draw) -> Seen:
        # Arrivals are the load's shape (jobs trickle in), not a wait for something to happen.
        await asyncio.sleep(max(0.0, t0 + draw.arrival_s - time.monotonic()))
        return await runner(draw)

    return list(await asyncio.gather(*(at_arrival(d) for d in draws)))


async def bench(draws: Sequence[Draw]) -> tuple[dict[str, list[Seen]], dict[str, ServerJob], Probe]:
    async with FakeProcess() as fake:
        for mode in MODES:
            await fake.endpoint(ENDPOINTS[mode], status_sync=mode in ("SDK", "long-poll"))
        await fake.endpoint("bench-rtt")
        probe, stop = Probe(), asyncio.Event()
        async with (
            sdk_mode(fake.base_url) as sdk,
            run_sync_mode(fake.base_url, threads=len(draws)) as run_sync,
            client_mode(fake.base_url, ENDPOINTS["long-poll"]) as long_poll,
            client_mode(fake.base_url, ENDPOINTS["polling"]) as polling,
            webhook_mode(fake.base_url) as webhook,
            asyncio.TaskGroup() as group,
        ):
            probing = group.create_task(probe.run(fake.base_url, stop))
            runners = {
                "SDK": sdk,
                "run_sync": run_sync,
                "long-poll": long_poll,
                "polling": polling,
                "webhook": webhook,
            }
            t0 = time.monotonic() + 0.5
            budget = JOB_TIMEOUT_S + ARRIVALS_S + 60
            async with asyncio.timeout(budget):
                results = await asyncio.gather(
                    *(
                        run_mode(runners[m], draws, t0 + k * MODE_SHIFT_S)
                        for k, m in enumerate(MODES)
                    )
                )
            stop.set()
            await probing
        server = await fake.jobs()
    return dict(zip(MODES, results, strict=True)), server, probe


@dataclass(frozen=True)
class Row:
    cls: str
    mode: str
    n: int
    p50_ms: float
    p95_ms: float
    requests: float  # mean per job while waiting, plus the /run
    extra: str = ""


def summarize(seen: Sequence[Seen], server: dict[str, ServerJob], mode: str, cls: str) -> Row:
    mine = [s for s in seen if s.draw.cls == cls]
    delays, requests, full = [], [], []
    for s in mine:
        job = server[s.job_id]
        assert job.completed is not None and job.status == "COMPLETED", job
        delays.append((s.seen - job.completed) * 1000)
        requests.append(1 + job.requests.get("status", 0) + job.requests.get("status-sync", 0))
        full.append(((s.delivered or math.nan) - job.completed) * 1000)
    extra = ""
    if mode == "run_sync":
        extra = "a thread blocked per job; no job id until it ends, so not resumable after a crash"
    if mode == "webhook":
        net = [f - s.download_s * 1000 for f, s in zip(full, mine, strict=True)]
        via = sum(s.via_webhook for s in mine)
        extra = (
            f"to the user p50 {median(full):.0f} ms, minus download p50 {median(net):.0f} ms;"
            f" {via}/{len(mine)} via webhook; +1 media GET"
        )
    return Row(
        cls,
        mode,
        len(mine),
        median(delays),
        percentile(delays, 95),
        sum(requests) / len(requests),
        extra,
    )


def report(rows: list[Row], rtt_ms: float, args: argparse.Namespace) -> None:
    print(
        f"\nclient vs SDK: {args.per_class} jobs per class, seed {args.seed}, "
        f"nproc {os.cpu_count()}, one round trip (GET /health) p50 {rtt_ms:.2f} ms\n"
    )
    head = f"{'class':<5} {'mode':<10} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'req/job':>8}"
    print(f"{head} {'p50 ratio':>10} {'req ratio':>10}  notes")
    sdk = {r.cls: r for r in rows if r.mode == "SDK"}
    for r in rows:
        base = sdk[r.cls]
        ratio = f"{r.p50_ms / base.p50_ms:10.3f} {r.requests / base.requests:10.3f}"
        print(
            f"{r.cls:<5} {r.mode:<10} {r.n:>3} {r.p50_ms:8.1f} {r.p95_ms:8.1f} "
            f"{r.requests:8.2f} {ratio}  {r.extra}"
        )
    targets(rows, rtt_ms)


def targets(rows: list[Row], rtt_ms: float) -> None:
    """The issue's targets, judged on the 10 s class."""
    by = {(r.cls, r.mode): r for r in rows}
    sdk = by.get(("10s", "SDK"))
    if sdk is None:
        return
    print("\ntargets (10 s class): delay p50 <= 0.1 x SDK and requests <= 1/3 x SDK")
    for mode in ("polling", "long-poll"):
        r = by[("10s", mode)]
        delay_ratio, req_ratio = r.p50_ms / sdk.p50_ms, r.requests / sdk.requests
        verdict = "met" if delay_ratio <= 0.1 and req_ratio <= 1 / 3 else "MISSED"
        print(
            f"  {mode:<10} delay {delay_ratio:.3f} x, requests {req_ratio:.3f} x: {verdict}"
            + ("" if verdict == "met" else f" (needs <= {0.1 * sdk.p50_ms:.0f} ms p50)")
        )
    webhook = by[("10s", "webhook")]
    over = webhook.p50_ms - rtt_ms
    verdict = "met" if over <= 20 else "MISSED"
    print(
        f"  webhook    delay p50 {webhook.p50_ms:.1f} ms = round trip + {over:.1f} ms"
        f" (target <= 20 ms): {verdict}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--classes", default="2s,10s,60s", help="comma list from 2s,10s,60s")
    args = parser.parse_args(argv)
    forget_bot_settings()
    chosen = [c for c in CLASSES if c[0] in args.classes.split(",")]
    draws = draw_jobs(args.seed, args.per_class, chosen)
    started, load = time.monotonic(), os.getloadavg()[0]
    seen, server, probe = asyncio.run(bench(draws))
    rows = [summarize(seen[m], server, m, cls) for cls, _ in chosen for m in MODES]
    report(rows, median(probe.samples) * 1000, args)
    print(f"load average at the start {load:.2f}")
    print(f"\nwall time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
