"""A quick check, run by hand before and after changing the hot path: pass or fail.

    python -m bench.regress            # about a minute; exit 0 if no figure regressed, else 1
    python -m bench.regress --update   # record the current figures as the baseline

A few hundred jobs go through `bench.many_jobs` (the real engine against FakeRunpod in its own
process), once with long polls and once polling `/status`, each mode run `--runs` times (best
run kept), each run in a process of its own so that its peak RSS is its own. CPU per job is divided by a calibration loop measured in the same process
(`bench.common.calibration_ms`), so the figure moves far less with the load of a shared machine
than milliseconds would. Memory is the peak RSS growth per job, which the load does not change.
Both are compared with the committed baseline (`regress_baseline.json`); a figure more than
`TOLERANCE` above it fails. Not part of CI: it needs a quiet-ish machine and a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, forget_bot_settings

BASELINE = Path(__file__).with_name("regress_baseline.json")
TOLERANCE = 0.25  # a figure more than 25 % above the baseline fails
RSS_SLACK_KIB = 16.0  # and RSS per job must also grow by more than this (small figures are noisy)
MODES = {"long-poll": False, "polling": True}


def _figures(jobs: int, polling: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.many_jobs", "--json", "--jobs", str(jobs)]
    command += ["--exec-s", "2", *(["--polling"] if polling else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure(jobs: int, runs: int) -> dict[str, dict[str, float]]:
    """Per mode: CPU per job in calibration units and RSS growth per job in KiB (best of runs)."""
    found: dict[str, dict[str, float]] = {}
    for mode, polling in MODES.items():
        cpu, rss = [], []
        for _ in range(runs):
            f = _figures(jobs, polling)
            if f["problems"]:
                raise SystemExit(f"{mode}: the bench's checks failed: {'; '.join(f['problems'])}")
            cpu.append(f["cpu_per_job_ms"] / f["calibration_ms"])
            rss.append((f["rss_peak_mb"] - f["rss_before_mb"]) * 1024 / jobs)
            print(
                f"  {mode:9} CPU/job {f['cpu_per_job_ms']:6.2f} ms = {cpu[-1]:.3f} x calibration"
                f" ({f['calibration_ms']:.2f} ms), RSS +{rss[-1]:.1f} KiB/job,"
                f" delivered p50 {f['to_user_ms'][0]:.0f} ms"
            )
        found[mode] = {"cpu_ratio": min(cpu), "rss_kib_per_job": min(rss)}
    return found


def verdicts(found: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]]) -> bool:
    ok = True
    for mode, figures in found.items():
        for name, value in figures.items():
            base = baseline[mode][name]
            limit = base * (1 + TOLERANCE)
            if name == "rss_kib_per_job":
                limit = max(limit, base + RSS_SLACK_KIB)
            passed = value <= limit
            ok = ok and passed
            print(
                f"  {mode:9} {name:16} {value:8.3f}  baseline {base:8.3f}  limit {limit:8.3f}"
                f"  {'pass' if passed else 'FAIL'}"
            )
    return ok


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    return done.stdout.strip() or "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--update", action="store_true", help="write the baseline and exit 0")
    args = parser.parse_args(argv)
    forget_bot_settings()
    print(f"load average at the start {os.getloadavg()[0]:.2f}; {args.jobs} jobs per run")
    found = measure(args.jobs, args.runs)
    if args.update:
        record = {
            "commit": _commit(),
            "recorded": datetime.now(UTC).date().isoformat(),
            "jobs": args.jobs,
            **found,
        }
        BASELINE.write_text(json.dumps(record, indent=2) + "\n")
        print(f"baseline written to {BASELINE.name}")
        return 0
    baseline = json.loads(BASELINE.read_text())
    if baseline.get("jobs") != args.jobs:
        print(f"note: the baseline was measured with {baseline.get('jobs')} jobs per run")
    ok = verdicts(found, baseline)
    print("regress: pass" if ok else "regress: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
