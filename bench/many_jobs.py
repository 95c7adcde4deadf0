"""1,000 jobs in flight through the real job engine: CPU per job, peak RSS, wall time.

    python -m bench.many_jobs                  # 1,000 five-second jobs, long-poll (/status-sync)
    python -m bench.many_jobs --polling        # the same on an endpoint without /status-sync
    python -m bench.many_jobs --media-kb 200   # results the size of a real 1024x1024 JPEG
    python -m bench.many_jobs --profile        # where the CPU goes (pip install pyinstrument)

The bot is `open_core` with its production wiring (httpx pool, SQLite ledger and job table in a
temporary folder, INFO logging to a file as `python -m bot run` logs), limits raised so every
job is admitted at once. FakeRunpod runs in its own process (`bench.common`), so the CPU and
memory figures are the bot's alone; the fake's own are printed beside them.

Each job is a Flux Schnell image: submit (policy, price, quota hold), /run, wait, download the
PNG, charge, deliver to a recording Delivery that keeps the result but not the file's bytes (a
real Delivery uploads them and lets go). Users: 100, ten jobs each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import (
    API_KEY,
    FakeProcess,
    ServerJob,
    billed,
    calibration_ms,
    forget_bot_settings,
    median,
    percentile,
    rss_mb,
)
from bot.app import Core, open_core
from bot.config import Settings
from bot.delivery import ChannelRef, Result, Route
from bot.jobs.invocation import Community, Invocation
from bot.ledger.quota import Identity
from bot.policy import Where
from bot.requests import parse_text
from tests.fakes.delivery import RecordingDelivery

ENDPOINT = "black-forest-labs-flux-1-schnell"
USERS = 100
IDLE_S = 3.0  # how long the idle baseline is measured
RUN_TIMEOUT_S = 600.0


@dataclass
class LeanDelivery(RecordingDelivery):
    """RecordingDelivery that keeps results without their bytes, and when they arrived."""

    bytes_delivered: int = 0
    delivered_at: float | None = None

    async def deliver(self, result: Result, route: Route = Route.EDIT) -> None:
        self.bytes_delivered += sum(len(f.data) for f in result.files)
        self.delivered_at = time.monotonic()
        await super().deliver(replace(result, files=()), route)


def bench_settings(base_url: str, folder: Path, jobs: int) -> Settings:
    sections: dict[str, Any] = {
        "runpod": {"api_key": API_KEY, "base_url": base_url},
        "storage": {"database": str(folder / "bot.db")},
        "jobs": {
            "max_global": jobs,
            "max_per_user": jobs,
            "confirm_above_usd": "1000",
            "progress_interval_s": 2.0,  # the default
            "timeout_s": RUN_TIMEOUT_S,
        },
        "quotas": {"daily_usd": None, "monthly_usd": None, "workspace": {"monthly_usd": None}},
        "http": {"host": "127.0.0.1", "port": 0},
        "security": {"allow_private_urls": True},  # FakeRunpod's results are on 127.0.0.1
    }
    return Settings(**sections)


def log_like_the_bot(path: Path, level: str) -> None:
    """What `bot.cli.main.main` sets up, into a file: the formatting and writing cost is real."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        filename=path,
        force=True,  # a second run in one process (bench.regress) logs to its own file
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


async def run_jobs(core: Core, count: int, first: int = 0) -> dict[str, LeanDelivery]:
    """Submit `count` jobs at once and wait until the engine is idle; job id -> its Delivery."""
    catalog = core.catalog

    async def submit(i: int) -> tuple[str, LeanDelivery]:
        who = Identity("bench", "w1", f"u{i % USERS}")
        request = parse_text(
            "imagine", f"a lighthouse at dusk, take {i}", catalog, default_model="flux-schnell"
        )
        delivery = LeanDelivery()
        ref = ChannelRef("bench", who.workspace, f"c{i % 10}", who.user)
        submitted = await core.jobs.submit(
            Invocation(request, who, ref, delivery, Where(ref.channel))
        )
        return submitted.job_id, delivery

    pairs = await asyncio.gather(*(submit(first + i) for i in range(count)))
    await core.jobs.wait_idle(RUN_TIMEOUT_S)
    return dict(pairs)


async def idle_cpu_per_s(seconds: float) -> float:
    """The bot's CPU rate with the core open and nothing running (a measuring window)."""
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu) / (time.monotonic() - wall)


async def check(
    core: Core, deliveries: dict[str, LeanDelivery], since: datetime, bill: dict[str, Decimal]
) -> list[str]:
    """Every job delivered once; the ledger's total is what FakeRunpod billed; no hold left."""
    problems = []
    counts = Counter((len(d.results), len(d.failures)) for d in deliveries.values())
    if counts != Counter({(1, 0): len(deliveries)}):
        problems.append(f"(results, failures) per job: {dict(counts)}")
    billed_total = sum(bill.values(), Decimal(0))
    report = await core.ledger.report(None, since, datetime.now(UTC) + timedelta(minutes=1))
    if (report.jobs, report.total) != (len(bill), billed_total):
        problems.append(
            f"ledger: {report.jobs} jobs, ${report.total};"
            f" FakeRunpod billed {len(bill)} jobs, ${billed_total}"
        )
    for user in range(USERS):
        usage = await core.ledger.usage(Identity("bench", "w1", f"u{user}"))
        if any(a.held for a in usage.user):
            problems.append(f"u{user} still has money held")
    return problems


@dataclass(frozen=True)
class Figures:
    jobs: int
    wall_s: float
    cpu_s: float
    idle_cpu_s: float
    rss_before_mb: float
    rss_peak_mb: float
    fake_cpu_s: float
    fake_rss_mb: float
    connections: int
    requests: dict[str, float]
    to_user_ms: tuple[float, float]
    log_lines: int
    bytes_per_job: float
    problems: list[str]
    calibration_ms: float
    profile: str | None = None

    @property
    def cpu_per_job_ms(self) -> float:
        return (self.cpu_s - self.idle_cpu_s) / self.jobs * 1000

    @property
    def cpu_ratio(self) -> float:
        """CPU per job in calibration units: comparable across loads, unlike milliseconds."""
        return self.cpu_per_job_ms / self.calibration_ms


async def bench(args: argparse.Namespace) -> Figures:
    async with FakeProcess() as fake:
        await fake.endpoint(
            ENDPOINT,
            queue_s=0.0,
            exec_s=args.exec_s,
            status_sync=not args.polling,
            pad_bytes=args.media_kb * 1024,
        )
        with tempfile.TemporaryDirectory(prefix="bench-") as folder:
            log_path = Path(folder) / "bot.log"
            log_like_the_bot(log_path, args.log_level)
            async with open_core(bench_settings(fake.base_url, Path(folder), args.jobs)) as core:
                await run_jobs(core, 1, first=args.jobs)  # warm-up: imports, pools, first writes
                idle_rate = await idle_cpu_per_s(IDLE_S)
                calibration = calibration_ms()
                fake_before, rss_before = await fake.usage(), rss_mb()
                since = datetime.now(UTC)
                profiler = _profiler() if args.profile else None
                cpu, wall = time.process_time(), time.monotonic()
                deliveries = await run_jobs(core, args.jobs)
                cpu, wall = time.process_time() - cpu, time.monotonic() - wall
                profile = _stop(profiler)
                rss_peak = rss_mb()
                calibration = min(calibration, calibration_ms())
                fake_after = await fake.usage()
                requests, to_user, ours = await _server_side(core, fake, deliveries)
                bill = await billed(fake.base_url, ours)
                problems = await check(core, deliveries, since, bill)
            log_lines = sum(1 for _ in log_path.open())
    return Figures(
        jobs=args.jobs,
        wall_s=wall,
        cpu_s=cpu,
        idle_cpu_s=idle_rate * wall,
        rss_before_mb=rss_before,
        rss_peak_mb=rss_peak,
        fake_cpu_s=fake_after["cpu_s"] - fake_before["cpu_s"],
        fake_rss_mb=fake_after["maxrss_mb"],
        connections=int(fake_after["connections"] - fake_before["connections"]),
        requests=requests,
        to_user_ms=to_user,
        log_lines=log_lines,
        bytes_per_job=sum(d.bytes_delivered for d in deliveries.values()) / len(deliveries),
        problems=problems,
        calibration_ms=calibration,
        profile=profile,
    )


async def _server_side(
    core: Core, fake: FakeProcess, deliveries: dict[str, LeanDelivery]
) -> tuple[dict[str, float], tuple[float, float], dict[str, ServerJob]]:
    """Requests per job by route, completion-to-delivery p50/p95 (ms), and the fake's record
    of each measured job (by Runpod id)."""
    server = await fake.jobs()
    routes: Counter[str] = Counter()
    delays = []
    ours: dict[str, ServerJob] = {}
    for job_id, delivery in deliveries.items():
        record = await core.jobs.job(job_id, Community("bench", "w1"))
        assert record is not None and record.copies[0].runpod_id
        job = server[record.copies[0].runpod_id]
        ours[job.id] = job
        routes.update(job.requests)
        if job.completed is not None and delivery.delivered_at is not None:
            delays.append((delivery.delivered_at - job.completed) * 1000)
    routes["run"] = len(deliveries)
    per_job = {route: n / len(deliveries) for route, n in sorted(routes.items())}
    return per_job, (median(delays), percentile(delays, 95)), ours


def _profiler() -> Any:
    try:
        from pyinstrument import Profiler
    except ImportError as exc:
        raise SystemExit("--profile needs pyinstrument: pip install pyinstrument") from exc
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    return profiler


def _stop(profiler: Any) -> str | None:
    if profiler is None:
        return None
    profiler.stop()
    return str(profiler.output_text(unicode=False, color=False, show_all=False))


def report(f: Figures, args: argparse.Namespace) -> None:
    per_job_ms = f.cpu_per_job_ms
    mode = "polling /status" if args.polling else "long-poll /status-sync"
    print(
        f"\nmany jobs: {f.jobs} x {args.exec_s:g} s Flux Schnell jobs, {mode},"
        f" media {f.bytes_per_job / 1024:.1f} KiB per job, nproc {os.cpu_count()}\n"
    )
    print(f"  wall time, submit to all delivered   {f.wall_s:8.2f} s")
    print(f"  bot CPU (process_time)               {f.cpu_s:8.2f} s")
    print(f"  idle baseline over the same wall     {f.idle_cpu_s:8.3f} s")
    print(f"  bot CPU per job                      {per_job_ms:8.2f} ms   (target <= 2 ms)")
    print(f"  calibration loop (bench.common)      {f.calibration_ms:8.2f} ms")
    print(f"  bot CPU per job / calibration        {f.cpu_ratio:8.3f}")
    print(f"  bot peak RSS                         {f.rss_peak_mb:8.1f} MB   (target <= 200 MB)")
    print(f"  bot RSS before the jobs              {f.rss_before_mb:8.1f} MB")
    print(f"  fake CPU per job (its own process)   {f.fake_cpu_s / f.jobs * 1000:8.2f} ms")
    print(f"  fake peak RSS                        {f.fake_rss_mb:8.1f} MB")
    print(
        f"  completion -> delivered p50 / p95    {f.to_user_ms[0]:8.0f} / {f.to_user_ms[1]:.0f} ms"
    )
    requests = ", ".join(f"{route} {n:.2f}" for route, n in f.requests.items())
    print(f"  requests per job                     {sum(f.requests.values()):8.2f}   ({requests})")
    print(f"  TCP connections opened to the fake   {f.connections:8d}")
    print(f"  log lines per job                    {f.log_lines / (f.jobs + 1):8.1f}")
    verdict = "all delivered once, ledger total = FakeRunpod's bill, no holds left"
    print(f"  checks                               {'; '.join(f.problems) or verdict}")
    cpu_ok, rss_ok = per_job_ms <= 2.0, f.rss_peak_mb <= 200
    print(
        f"\ntargets: CPU per job {'met' if cpu_ok else 'MISSED'},"
        f" peak RSS {'met' if rss_ok else 'MISSED'}"
    )
    if f.profile:
        print("\nprofile (pyinstrument; its overhead inflates the CPU figures above):\n")
        print(f.profile)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--exec-s", type=float, default=5.0)
    parser.add_argument("--polling", action="store_true", help="endpoint without /status-sync")
    parser.add_argument("--media-kb", type=int, default=0, help="pad each result to this size")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON line (for bench.regress)")
    args = parser.parse_args(argv)
    forget_bot_settings()
    load = os.getloadavg()[0]
    figures = asyncio.run(bench(args))
    if args.json:
        print(json.dumps({**asdict(figures), "cpu_per_job_ms": figures.cpu_per_job_ms}))
        return 0
    report(figures, args)
    print(f"load average at the start {load:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
