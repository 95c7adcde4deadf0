"""What `bench.adapters` prints: per platform, the bot process, the ledger, py-spy stages."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from bench import spy
from bench.chat_users import (
    ACK_LIMIT_S,
    CHANNELS,
    QUEUE_MEDIAN_S,
    is_warm_up,
    private_replies,
    seen,
)
from bench.common import median, percentile

if TYPE_CHECKING:
    from bench.adapters import Run


def _ms(values: Sequence[float]) -> str:
    if not values:
        return "-"
    ms = [v * 1000 for v in values]
    return f"{median(ms):.0f} / {percentile(ms, 99):.0f} / {max(ms):.0f}"


def job_times(run: Run, platform: str) -> tuple[list[float], list[float]]:
    """Command -> its /run reached Runpod; Runpod COMPLETED -> the bot recorded it delivered."""
    to_runpod, to_user = [], []
    for job in run.records.jobs:
        sent = run.p.sent.get(job.label)
        if job.platform != platform or sent is None or is_warm_up(job.label):
            continue
        server = run.server.get(job.runpod_ids[0]) if job.runpod_ids else None
        if server is None:
            continue
        to_runpod.append(server.created - sent.at)
        if server.completed is not None and job.finished_at is not None:
            to_user.append(job.finished_at - run.clock_offset - server.completed)
    return to_runpod, to_user


def platform_table(run: Run) -> list[str]:
    """One row per figure, one column per platform."""
    shown = seen(run.p)
    calls = {
        "slack": Counter(call.method for call in run.p.slack.calls),
        "discord": Counter(r.route or r.path for r in run.p.discord.requests),
    }
    cells: dict[str, list[str]] = {}
    for platform in ("slack", "discord"):
        sent = run.p.of(platform)
        acks = [s.ack_s for s in sent if s.ack_s is not None]
        to_runpod, to_user = job_times(run, platform)
        jobs = len(run.p.of(platform, measured=False))
        cells[platform] = [
            str(len(sent)),
            str(len(acks)),
            _ms(acks),
            str(sum(a > ACK_LIMIT_S for a in acks)),
            _ms(to_runpod),
            _ms(to_user),
            str(sum((shown[s.label].results, shown[s.label].files) == (1, 1) for s in sent)),
            f"{sum(calls[platform].values()) / max(jobs, 1):.1f}",
        ]
    names = [
        "commands sent (after 1 warm-up)",
        "acknowledged (200 / deferred)",
        "ack latency p50 / p99 / max, ms",
        "acks later than 3 s",
        "command -> its /run at Runpod, ms",
        "Runpod done -> delivered, ms",
        "delivered once, with its file",
        "platform API calls per job",
    ]
    lines = [f"  {'':38}{'Slack':>21}{'Discord':>21}"]
    for k, name in enumerate(names):
        lines.append(f"  {name:38}{cells['slack'][k]:>21}{cells['discord'][k]:>21}")
    for platform, label in (("slack", "Slack calls"), ("discord", "Discord requests")):
        jobs = max(len(run.p.of(platform, measured=False)), 1)
        top = ", ".join(f"{name} {n / jobs:.2f}" for name, n in calls[platform].most_common(6))
        lines.append(f"  {label} per job: {top}")
    return lines


def process_lines(run: Run) -> list[str]:
    cpu = run.after.cpu_s - run.before.cpu_s
    idle = run.idle_cpu * run.wall_s
    commands = len(run.p.of("slack")) + len(run.p.of("discord"))
    warnings = sum(" WARNING " in line for line in run.log)
    errors = sum(" ERROR " in line or "Traceback" in line for line in run.log)
    routes: Counter[str] = Counter()
    for job in run.server.values():
        routes.update(job.requests)
    runpod = ", ".join(f"{r} {n / max(len(run.server), 1):.2f}" for r, n in sorted(routes.items()))
    return [
        f"  bot process (python -m bot run; exit status {run.returncode}):",
        f"    CPU, first command to last result  {cpu:8.2f} s in {run.wall_s:.1f} s"
        f" ({cpu / run.wall_s:.0%} of one core); idle baseline {idle:.2f} s",
        f"    CPU per command                    {(cpu - idle) / max(commands, 1) * 1000:8.2f} ms",
        f"    RSS after start + warm-up, peak    {run.before.rss_mb:8.1f} MB,"
        f" {run.after.peak_rss_mb:.1f} MB",
        f"    log lines per job; warnings; errors {len(run.log) / max(len(run.records.jobs), 1):7.1f};"
        f" {warnings}; {errors}",
        f"  last command -> last result          {run.drain_s:8.1f} s",
        f"  load generator's worst lateness      {run.late_s * 1000:8.0f} ms",
        f"  fake Runpod CPU (its own process)    {run.runpod_cpu_s:8.2f} s",
        f"  this process CPU (fakes and users)   {run.driver_cpu_s:8.2f} s",
        f"  Runpod requests per job beside /run  {runpod}",
    ]


def ledger_lines(run: Run, problems: list[str]) -> list[str]:
    records, billed_total = run.records, sum(run.costs.values(), Decimal(0))
    open_holds = sum(state == "held" for state, _ in records.holds.values())
    verdict = "every command acknowledged within 3 s, delivered once with its file, charged once"
    return [
        f"  ledger: {records.ledger_jobs} jobs settled, ${records.ledger_total};"
        f" FakeRunpod billed {len(run.costs)} jobs, ${billed_total}; holds open: {open_holds}",
        f"  private replies (errors, refusals)   {private_replies(run.p):8d}",
        f"\n  checks: {'; '.join(problems) or verdict}",
    ]


def spy_lines(run: Run, raw: Path) -> list[str]:
    """py-spy's samples by stage, as a share and as ms of GIL-held time per command."""
    total, stages = spy.by_stage(raw)
    commands = max(len(run.p.of("slack")) + len(run.p.of("discord")), 1)
    lines = [
        f"\n  bot's GIL-held time by stage (py-spy --gil, {total} samples at {spy.RATE_HZ} Hz):"
    ]
    for stage, n in stages:
        per_command = n / spy.RATE_HZ / commands * 1000
        lines.append(f"    {stage:56}{n / max(total, 1):6.1%}{per_command:8.2f} ms/command")
    return lines


def report(run: Run, problems: list[str]) -> None:
    args = run.args
    print(
        f"\nadapters: {args.duration:g} s at {args.rate:g} commands/s per platform,"
        f" {args.users} users per platform in {CHANNELS} channels; Flux Schnell jobs:"
        f" queue ~{QUEUE_MEDIAN_S:g} s + run ~{args.job_s:g} s (log-normal medians),"
        f" {args.media_kb} KiB results; jobs.max_global {args.max_global}"
        f"{'; ' + args.only + ' only' if args.only else ''}; {args.workers} worker(s) on"
        f" {args.database.split('@')[-1]}\n"
    )
    print("\n".join([*platform_table(run), "", *process_lines(run), *ledger_lines(run, problems)]))
    for line in [line for line in run.log if " ERROR " in line][:5]:
        print(f"  log: {line}")
