"""`python -m bot try`: run one job from the terminal through the same core (the playground).

The job is charged to a local identity (`cli:local:<user>`) that the default quotas apply to,
so operators can try their limits. Results go to `--out` (or the current folder); `--show-request`
prints the Runpod API call the job made, with the seeds it sent (as "Show request" in chat).
`python -m bot resume` finishes terminal jobs that an interrupted `try` left behind. Both drive
only jobs no live process owns (bot/jobs/workers.py): a `try` beside a running bot or another `try`
never touches their jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.cli.basic import PLATFORM, local_identity, parse_key_values, settings_and_catalog
from bot.commands import command_of_kind
from bot.delivery import ChannelRef, Confirmation, Delivery, Failure, Progress, Result, Route
from bot.policy import Where
from bot.requests import build_request
from bot.runpod import pricing

if TYPE_CHECKING:
    from bot.app import Core

EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser("try", help="run one job from the terminal")
    run.add_argument("model", help="model id, alias or endpoint id")
    run.add_argument("prompt", nargs="?", default="", help="the prompt (text for speech models)")
    run.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--file", action="append", default=[], metavar="URL", help="input file URL")
    run.add_argument("--count", type=int, default=1)
    run.add_argument("--out", help="where to write the result (default: ./<job id>.<ext>)")
    run.add_argument("--show-request", action="store_true", help="print the equivalent API call")
    run.add_argument("--yes", action="store_true", help="confirm an expensive job")
    run.set_defaults(handler=_try)
    resume = subparsers.add_parser("resume", help="finish terminal jobs an interrupted `try` left")
    resume.set_defaults(handler=_resume)


async def _try(args: argparse.Namespace) -> int:
    from bot.app import open_core  # the job engine: not imported by `--help`, `models`, `cost`
    from bot.jobs.invocation import Community, Invocation

    settings, catalog = settings_and_catalog(args)
    model = catalog.get(args.model)
    command = command_of_kind(model.kind).name
    options = parse_key_values(args.param)
    options["model"] = model.id
    options["count"] = args.count
    request = build_request(
        command,
        catalog,
        prompt=args.prompt,
        options=options,
        default_model=model.id,
        media=args.file,
    )
    identity = local_identity()
    out = str(Path(args.out).resolve()) if args.out else ""
    channel = ChannelRef(PLATFORM, identity.workspace, out or str(Path.cwd()), identity.user)
    delivery = TerminalDelivery(channel)
    async with open_core(settings) as core:
        _register(core)
        await core.jobs.resume(PLATFORM)
        submitted = await core.jobs.submit(
            Invocation(request, identity, channel, delivery, Where(channel="terminal", is_dm=True)),
            confirmed=args.yes,
        )
        print(
            f"job {submitted.job_id}: estimated {pricing.exact_usd(submitted.estimate)}",
            file=sys.stderr,
        )
        if args.show_request:  # the job's own record: the seeds chosen for it, not -1
            here = Community(PLATFORM, identity.workspace)
            print(await core.jobs.show_request(submitted.job_id, here))
        await core.jobs.wait_idle()
    return 0 if delivery.ok else EXIT_FAILED


async def _resume(args: argparse.Namespace) -> int:
    from bot.app import open_core

    settings, _ = settings_and_catalog(args)
    async with open_core(settings) as core:
        _register(core)
        count = await core.jobs.resume(PLATFORM)
        # A `try` that died just now still holds its lease: wait that long for it to run out.
        deadline = time.monotonic() + settings.workers.lease_s + settings.workers.heartbeat_s
        while await core.jobs.driven_elsewhere(PLATFORM) and time.monotonic() < deadline:
            await asyncio.sleep(settings.workers.heartbeat_s)
            count += await core.jobs.recover()
        print(f"resumed {count} job(s)", file=sys.stderr)
        await core.jobs.wait_idle()
    return 0


def _register(core: Core) -> None:
    core.jobs.register_platform(PLATFORM, TerminalDelivery)


class TerminalDelivery:
    """Progress on stderr, results into files; re-delivering a job overwrites the same files."""

    def __init__(self, channel: ChannelRef, *, stream: TextIO | None = None) -> None:
        self._channel = channel
        self._stream = stream or sys.stderr
        self.ok = True

    async def progress(self, update: Progress) -> None:
        print(f"  {update.describe()}", file=self._stream)

    async def confirm(self, request: Confirmation) -> None:
        self.ok = False
        print(
            f"{request.summary} is estimated at {pricing.exact_usd(request.estimate)}, above the"
            f" {pricing.exact_usd(request.threshold)} confirmation threshold: run again with --yes.",
            file=self._stream,
        )

    async def deliver(self, result: Result, route: Route = Route.EDIT) -> None:
        """Every route is the same here: the files are written where `--out` says."""
        target = Path(self._channel.channel)
        for number, file in enumerate(result.files):
            path = _output_path(target, file.filename, number)
            if path.exists() and path.read_bytes() == file.data:
                continue  # delivered before a restart: the same result, not a second one
            partial = path.with_name(f".{path.name}.partial")
            partial.write_bytes(file.data)
            partial.replace(path)
            print(f"wrote {path}", file=self._stream)
        if result.text and command_of_kind(result.kind).output == "text":
            print(result.text)
        cost = "free (cached)" if result.cached else pricing.exact_usd(result.cost)
        print(f"cost: {cost}. {result.remaining}".rstrip(), file=self._stream)
        for note in result.notes:
            print(f"note: {note}", file=self._stream)

    async def fail(self, failure: Failure) -> None:
        self.ok = False
        print(f"job {failure.job_id} failed: {failure.message}", file=self._stream)

    async def warn(self, job_id: str, message: str) -> None:
        print(f"warning: {message}", file=self._stream)


def _output_path(target: Path, filename: str, number: int) -> Path:
    """`--out fox.png` for the first file, `fox-2.png`... for more; a folder keeps the names."""
    if target.is_dir():
        return target / filename
    if number == 0:
        return target
    return target.with_name(f"{target.stem}-{number + 1}{target.suffix}")


_: type[Delivery] = TerminalDelivery
