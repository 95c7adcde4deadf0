"""py-spy on the bot for the measured window only, and its samples summed by stage of a command.

`py-spy record --pid` attaches to the running bot after its start and warm-up and is stopped
(SIGINT) after the last result, so imports and start-up are not in the profile, and py-spy's own
CPU is its own process's, not the bot's. `--gil` keeps only the thread holding the GIL: Python
work, not threads waiting on a lock or a socket. Stages are matched on the function names of
each sampled stack, the first match wins. A stack is one thread's: SQL that a submit sends to
the writer's thread counts as "SQLite thread", only the event loop's side as "submit". Needs
py-spy (`pip install -e '.[bench]'`) and ptrace rights (root, or `kernel.yama.ptrace_scope` 0).
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

RATE_HZ = 250
STOP_TIMEOUT_S = 30.0

# (stage, patterns): a pattern "a>b" matches a stack with frame a and, deeper, frame b.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Slack command: submit (admission, hold, insert)", ("Commands.run>JobService.submit",)),
    ("Slack command: card post", ("Commands.run>SlackDelivery.open",)),
    ("Slack command: parse, people, replies", ("adapters/slack/commands.py",)),
    ("Discord command: submit (admission, hold, insert)", ("job_command>JobService.submit",)),
    ("Discord command: defer", ("job_command>defer",)),
    ("Discord command: parse, checks", ("job_command", "CommandTree._from_interaction")),
    ("Slack ingress: HTTP server, Bolt, signature, ack", ("SlackServer._events", "slack_bolt")),
    ("Discord gateway: read, dispatch", ("discord/gateway.py", "discord/state.py")),
    ("progress edits", ("ProgressThrottle", "CardPacer")),
    ("result delivery: Slack", ("SlackDelivery",)),
    ("result delivery: Discord", ("DiscordDelivery",)),
    ("Runpod calls (/run, long poll)", ("RunpodClient",)),
    ("result download", ("Downloader",)),
    ("spool and archive files", ("Spool.", "Archive.")),
    ("job engine, other", ("bot/jobs/lifecycle.py", "bot/jobs/tracking.py", "bot/jobs/courier.py")),
    ("SQLite thread", ("_connection_worker_thread",)),
    ("other threads (asyncio.to_thread, executors)", ("concurrent/futures",)),
    ("event loop: select, callbacks, socket reads", ("asyncio/", "selectors.py")),
)


@asynccontextmanager
async def spying(pid: int, raw_path: Path) -> AsyncIterator[None]:
    """py-spy samples `pid` into `raw_path` (collapsed stacks) while the block runs."""
    proc = await asyncio.create_subprocess_exec(
        "py-spy", "record", "--pid", str(pid), "--gil", "--nonblocking",
        "--rate", str(RATE_HZ), "--format", "raw", "--output", str(raw_path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def stage_of(stack: str) -> str:
    for stage, patterns in STAGES:
        for pattern in patterns:
            outer, _, inner = pattern.partition(">")
            at = stack.find(outer)
            if at >= 0 and (not inner or stack.find(inner, at) >= 0):
                return stage
    return "other"


def by_stage(raw_path: Path) -> tuple[int, list[tuple[str, int]]]:
    """All samples, and samples per stage, the largest first, from py-spy's raw output."""
    counts: Counter[str] = Counter()
    for line in raw_path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        counts[stage_of(stack)] += int(n)
    return sum(counts.values()), counts.most_common()
