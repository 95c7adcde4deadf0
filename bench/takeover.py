"""Takeover time: a `run` worker is SIGKILLed; how long until another drives its jobs again.

    python bench/takeover.py [--runs 3] [--database sqlite|DSN ...] [--lease 30:5 --lease 2:0.3]

Two `python -m bot run` workers serve FakeSlack (Socket Mode) on one database, with FakeRunpod
in this process; four /imagine jobs run on Runpod for far longer than the measurement. Once every
job is submitted, one worker is SIGKILLed. Measured, on the machine's clocks:
- kill -> lease expiry: `workers.expires_at` of the killed worker (its last renewal plus
  `lease_s`), less the kill time; it depends on where in its heartbeat the worker died;
- expiry -> takeover: until the survivor's first Runpod status request for a killed worker's job
  (the first thing the new owner does with it); bounded by the survivor's recovery scan, which
  runs every `heartbeat_s`;
- kill -> takeover: the sum, what a member waits on top of the job itself.
`--lease LEASE:HEARTBEAT` (seconds, repeatable) sets `[workers] lease_s` and `heartbeat_s`;
default the shipped 30:5 and a short 2:0.3. `--database` is `sqlite` (a new file per run) or a
PostgreSQL server DSN (a new database per run, dropped afterwards); default both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import fresh_place
from tests.conftest import API_KEY, register_catalog
from tests.fakes.runpod import FakeRunpod
from tests.jobs.test_workers import FLUX, imagine, rows, slack_bots, states, until

DEFAULT_PLACES = ["sqlite", "postgresql://postgres@127.0.0.1:5432/postgres"]
JOBS = 4


def _runpod_ids(place: str, worker_id: str) -> set[str]:
    import json

    found: set[str] = set()
    for (copies,) in rows(place, "SELECT copies FROM jobs WHERE owner = ?", (worker_id,)):
        for copy in json.loads(str(copies)):
            if copy.get("runpod_id"):
                found.add(copy["runpod_id"])
    return found


async def _one(where: str, lease_s: float, heartbeat_s: float) -> tuple[float, float]:
    """(kill -> lease expiry, expiry -> first request by the new owner), in seconds."""
    async with FakeRunpod(api_key=API_KEY) as runpod:
        register_catalog(runpod)
        runpod.endpoints[FLUX].execution_time = 3 * lease_s + 60
        with (
            tempfile.TemporaryDirectory(prefix="takeover-bench-") as tmp,
            fresh_place(where, Path(tmp)) as place,
        ):
            leases = {
                "BOT_WORKERS__LEASE_S": str(lease_s),
                "BOT_WORKERS__HEARTBEAT_S": str(heartbeat_s),
            }
            async with slack_bots(Path(tmp), runpod, 2, place, **leases) as (slack, bots):
                for n in range(JOBS):
                    await imagine(slack, f"tin robot {n}", connection=n % 2)
                await until(lambda: states(place)["submitted"] == JOBS, timeout=30)
                victim, survivor = bots
                assert victim.process is not None
                pid = victim.process.pid
                ((worker_id,),) = rows(place, "SELECT id FROM workers WHERE pid = ?", (pid,))
                victim.signal(signal.SIGKILL)
                killed = time.monotonic()
                await victim.process.wait()
                wall_minus_mono = time.time() - time.monotonic()
                ((expires,),) = rows(
                    place, "SELECT expires_at FROM workers WHERE id = ?", (worker_id,)
                )
                expiry = float(expires) - wall_minus_mono  # type: ignore[arg-type]
                jobs = _runpod_ids(place, str(worker_id))
                if not jobs:
                    raise SystemExit("the killed worker drove no job; nothing to take over")

                def first_request() -> float | None:
                    """After expiry: a request the victim sent just before its death may reach
                    the fake after `killed`, but nobody else may touch its jobs before expiry."""
                    after = max(killed, expiry)
                    times = [r.at for r in runpod.requests if r.at > after and r.job_id in jobs]
                    return min(times) if times else None

                await until(first_request, timeout=lease_s + 10 * heartbeat_s + 30)
                taken = first_request()
                assert taken is not None
                if "taken over" not in survivor.log():
                    raise SystemExit("a request for a killed worker's job, but no takeover logged")
                return expiry - killed, taken - expiry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", action="append")
    parser.add_argument("--lease", action="append", help="LEASE_S:HEARTBEAT_S")
    args = parser.parse_args()
    leases = [tuple(map(float, x.split(":"))) for x in (args.lease or ["30:5", "2:0.3"])]
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, {args.runs} runs each")
    for where in args.database or DEFAULT_PLACES:
        for lease_s, heartbeat_s in leases:
            results = []
            for _ in range(args.runs):
                load = os.getloadavg()[0]
                to_expiry, to_takeover = asyncio.run(_one(where, lease_s, heartbeat_s))
                results.append((to_expiry, to_takeover))
                print(
                    f"  {where.split('@')[-1]} lease {lease_s:g}s heartbeat {heartbeat_s:g}s:"
                    f" kill->expiry {to_expiry:6.2f}s, expiry->takeover {to_takeover:5.2f}s,"
                    f" kill->takeover {to_expiry + to_takeover:6.2f}s (load {load:.2f})",
                    flush=True,
                )
            medians = [statistics.median(r[i] for r in results) for i in range(2)]
            print(
                f"{where.split('@')[-1]:<30} lease {lease_s:g}s/{heartbeat_s:g}s  medians:"
                f" kill->expiry {medians[0]:.2f}s, expiry->takeover {medians[1]:.2f}s,"
                f" kill->takeover {sum(medians):.2f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
