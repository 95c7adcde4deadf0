"""Every fault FakeRunpod can inject, at every stage of a job, through the real core.

A cell is one job: FakeRunpod is told to misbehave once (or in a storm, more often than any retry
budget), one request goes through `JobService.submit` as a chat adapter sends it, and the test
waits (bounded) for the user to be told something. Whatever the fault, the job must end in one
of two ways:

- delivered: one result, charged exactly what Runpod billed, no hold left;
- released: one failure saying nothing was charged, nothing spent, no hold left, and no job the
  bot knows of left running at Runpod;

never stuck, never charged for a failure, never started twice at Runpod. Each cell also has an
expected outcome (below, `expected`), so a fault the bot used to survive cannot silently turn
into a refund. The table is printed at the end of the run (`conftest.pytest_terminal_summary`).

Stages: `run` (POST /run), `status-sync` (the long poll), `status` (an endpoint without the long
poll, so the bot polls /status), `stream` (a text job's /stream progress), `media` (downloading
the result). Slow responses on the long poll must outlast its 20 s wait, so those two cells are
`slow` (the full run).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest

from bot.app import open_core
from bot.runpod.client import FINAL_STATES
from tests.conftest import make_settings
from tests.fakes.runpod import FakeRunpod, Outcome, Route
from tests.identities import HERE
from tests.jobs.support import spent, submit

FLUX = "black-forest-labs-flux-1-schnell"
QWEN = "qwen3-32b-awq"
STORM = 8  # more failures in a row than any retry budget below
TIMEOUT_S = 0.5  # the client's request timeout and the download timeout
LONG_POLL_S = 20.0  # RunpodClient's default long-poll wait
RETRY_AFTER_S = 0.05


@dataclass(frozen=True)
class Fault:
    name: str
    kind: Literal["status", "reset", "slow", "malformed", "outcome"]
    status: int = 0
    count: int = 1
    outcome: Outcome | None = None

    @property
    def storm(self) -> bool:
        return self.count >= STORM


@dataclass(frozen=True)
class Stage:
    name: str
    route: Route
    command: str
    text: str
    endpoint: str


FAULTS = (
    Fault("429 x2 (Retry-After)", "status", 429, 2),
    Fault("429 storm (Retry-After)", "status", 429, STORM),
    Fault("500", "status", 500),
    Fault("502", "status", 502),
    Fault("503", "status", 503),
    Fault("503 storm", "status", 503, STORM),
    Fault("connection reset", "reset"),
    Fault("reset storm", "reset", count=STORM),
    Fault("slow > timeout", "slow"),
    Fault("slow storm", "slow", count=STORM),
    Fault("malformed JSON", "malformed"),
    Fault("malformed storm", "malformed", count=STORM),
    Fault("job FAILED", "outcome", outcome="FAILED"),
    Fault("job TIMED_OUT", "outcome", outcome="TIMED_OUT"),
    Fault("job CANCELLED", "outcome", outcome="CANCELLED"),
    Fault("job vanishes", "outcome", outcome="VANISH"),
    Fault("media URL 404", "outcome", outcome="MEDIA_404"),
)
IMAGE = "a red fox --size 256x256"
STAGES = (
    Stage("run", "run", "imagine", IMAGE, FLUX),
    Stage("status-sync", "status-sync", "imagine", IMAGE, FLUX),
    Stage("status", "status", "imagine", IMAGE, FLUX),
    Stage("stream", "stream", "ask", "tell me about foxes --max-tokens 12", QWEN),
    Stage("media", "media", "imagine", IMAGE, FLUX),
)


# What a release message says for an HTTP fault at each stage (besides "Nothing was charged").
SAYS = {
    "run": ("sending the job to Runpod failed", "rate limiting"),
    "status-sync": ("lost contact with Runpod while the job ran", "rate limiting"),
    "status": ("lost contact with Runpod while the job ran", "rate limiting"),
    "stream": ("lost contact with Runpod while the job ran", "rate limiting"),
    "media": ("the result",),
}


def applies(fault: Fault, stage: Stage) -> bool:
    if fault.outcome == "MEDIA_404":
        return stage.name == "media"
    if fault.kind == "outcome":  # how the job ends is learnt from status (or stream)
        return stage.name in ("status-sync", "status", "stream")
    return True


def expected(fault: Fault, stage: Stage) -> str:
    """What a careful client does: retry what is safe, never resubmit what may have started."""
    if fault.kind == "outcome":
        return "released"
    if stage.name == "run":  # only a 429 provably started nothing; a storm outlasts the retries
        return "delivered" if fault.status == 429 and not fault.storm else "released"
    if stage.name == "media" and fault.kind == "malformed":
        return "released"  # a 200 with the wrong kind of file is not retried
    if stage.name == "stream":
        return "delivered"  # the stream is progress only; /status-sync still brings the result
    if stage.name in ("status-sync", "status"):
        return "delivered"  # tracking outlasts an outage: the job runs on at Runpod meanwhile
    return "released" if fault.storm else "delivered"


def slow_delay(stage: Stage) -> float:
    """Long enough to outlast the client's timeout for this route."""
    if stage.name == "status-sync":
        return LONG_POLL_S + TIMEOUT_S + 1.0
    return TIMEOUT_S + 0.4


def inject(fake: FakeRunpod, fault: Fault, stage: Stage) -> None:
    if fault.kind == "status":
        retry_after = RETRY_AFTER_S if fault.status == 429 else None
        fake.fail_next(stage.route, fault.status, count=fault.count, retry_after=retry_after)
    elif fault.kind == "reset":
        fake.reset_next(stage.route, fault.count)
    elif fault.kind == "slow":
        fake.slow_next(stage.route, slow_delay(stage), fault.count)
    elif fault.kind == "malformed":
        fake.malformed_next(stage.route, fault.count)
    else:
        assert fault.outcome is not None
        fake.next_job(stage.endpoint, outcome=fault.outcome, error="fake worker error")


def is_long(fault: Fault, stage: Stage) -> bool:
    return fault.kind == "slow" and stage.name == "status-sync"


CELLS = [
    pytest.param(
        fault,
        stage,
        id=f"{fault.name}@{stage.name}",
        marks=[pytest.mark.slow] if is_long(fault, stage) else [],
    )
    for fault in FAULTS
    for stage in STAGES
    if applies(fault, stage)
]


@dataclass
class Cell:
    outcome: str
    seconds: float
    message: str = ""
    unseen_jobs: int = 0  # jobs Runpod ran that the bot never learnt the id of
    notes: list[str] = field(default_factory=list)


SEEN: dict[tuple[str, str], Cell] = {}


@pytest.mark.parametrize(("fault", "stage"), CELLS)
async def test_a_fault_ends_in_delivery_or_a_clear_release(
    fault: Fault,
    stage: Stage,
    tmp_path: Path,
    runpod_fake: FakeRunpod,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fake = runpod_fake
    endpoint = fake.endpoints[stage.endpoint]
    # Text jobs end at once: the bot would otherwise sleep between /stream polls.
    endpoint.execution_time = 0.0 if stage.name == "stream" else 0.05
    endpoint.stream_chunks = 3
    fake.status_sync = stage.name != "status"
    inject(fake, fault, stage)
    settings = make_settings(
        tmp_path,
        fake,
        runpod={"max_retries": 2, "backoff_base_s": 0.01, "request_timeout_s": TIMEOUT_S},
        jobs={"download_timeout_s": TIMEOUT_S, "timeout_s": 300},
    )
    bound = 320.0 if is_long(fault, stage) else 15.0  # a long-poll storm is ridden out (~3 min)
    async with open_core(settings) as core:
        started = time.monotonic()
        submitted, delivery = await submit(core, stage.text, command=stage.command)
        await delivery.wait_for(lambda: delivery.ended, timeout=bound)
        await core.jobs.wait_idle(bound)
        seconds = time.monotonic() - started
        if fault.kind == "slow" and stage.name == "run":
            # The held /run goes on after the bot gave up: count the job it starts.
            await fake.wait_until(lambda: bool(fake.jobs), timeout=bound)
        job = await core.jobs.job(submitted.job_id, HERE)
        paid, held = await spent(core)
    assert job is not None

    known = [c.runpod_id for c in job.copies if c.runpod_id]
    started_jobs = [r for r in fake.requests if r.route == "run" and r.status == 200]
    cell = Cell(
        "delivered" if delivery.results else "released",
        seconds,
        unseen_jobs=len(fake.jobs) - len(known),
    )
    if delivery.failures:
        cell.message = delivery.failures[0].message
    SEEN[(fault.name, stage.name)] = cell

    assert delivery.ended == 1, f"told the user {delivery.ended} times"
    assert len(started_jobs) <= 1 and len(fake.jobs) <= 1, "more than one Runpod job started"
    if delivery.results:
        (result,) = delivery.results
        billed = sum((j.cost or Decimal(0) for j in fake.jobs.values()), Decimal(0))
        assert billed > 0 and result.cost == billed, f"charged {result.cost}, billed {billed}"
        assert (paid, held) == (billed, Decimal(0))
        assert job.state == "delivered" and len(started_jobs) == 1
    else:
        (failure,) = delivery.failures
        assert failure.charged == 0 and "nothing was charged" in failure.message.lower()
        assert "went wrong inside the bot" not in failure.message, failure.message
        # jobs.timeout_s is 300 s: a slow Runpod must not be reported as the bot's watchdog
        assert "longer than this bot allows" not in failure.message
        if fault.kind != "outcome":  # the message says where it went wrong
            assert any(words in failure.message for words in SAYS[stage.name]), failure.message
        assert (paid, held) == (Decimal(0), Decimal(0)), "charged (or still holding) for a failure"
        assert job.state in ("failed", "timed_out", "cancelled") and job.cost == 0
        running = [
            r
            for r in known
            if fake.jobs[r].status not in FINAL_STATES and not fake.jobs[r].vanished
        ]
        assert not running, f"released but left {running} running at Runpod"
    assert job.notified
    errors = [r for r in caplog.records if r.name.startswith("bot") and r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert cell.outcome == expected(fault, stage), cell.message


def report() -> list[str]:
    """The matrix as printed at the end of the run, then what users were told, and timings."""
    stages = [s.name for s in STAGES]
    width = max(len(f.name) for f in FAULTS)
    lines = [
        f"{'fault':<{width}} | " + " | ".join(f"{s:<11}" for s in stages),
        "-" * width + "-+-" + "-+-".join("-" * 11 for _ in stages),
    ]
    for fault in FAULTS:
        cells = []
        for stage in STAGES:
            cell = SEEN.get((fault.name, stage.name))
            if not applies(fault, stage):
                text = "-"
            elif cell is None:
                text = "(not run)"
            else:
                text = cell.outcome + ("*" if cell.unseen_jobs else "")
            cells.append(f"{text:<11}")
        lines.append(f"{fault.name:<{width}} | " + " | ".join(cells))
    lines.append("")
    lines.append("* the bot gave up waiting for /run's answer; Runpod ran the job anyway, unseen")
    lines.append("  (the operator pays Runpod for it; the user is charged nothing)")
    messages: dict[str, list[str]] = {}
    for (fault_name, stage_name), seen in SEEN.items():
        if seen.message:
            messages.setdefault(seen.message, []).append(f"{fault_name}@{stage_name}")
    lines.append("")
    lines.append("what the user was told when a job was released:")
    for message, where in sorted(messages.items()):
        lines.append(f"  {message!r}")
        lines.append(f"      <- {', '.join(sorted(where))}")
    seconds = sorted(cell.seconds for cell in SEEN.values())
    lines.append("")
    lines.append(
        f"{len(SEEN)} cells; seconds to the user being told: median "
        f"{seconds[len(seconds) // 2]:.2f}, max {seconds[-1]:.2f}"
    )
    return lines
