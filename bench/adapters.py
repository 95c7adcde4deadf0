"""Users issuing /imagine through both adapters at a fixed rate: ack latency, nothing lost, charged once.

    python -m bench.adapters                          # 60 s, 5 commands/s per platform, 50 users each
    python -m bench.adapters --duration 10 --rate 2   # a quick look
    python -m bench.adapters --only slack --workers 4 --database postgresql://postgres@127.0.0.1/postgres
    python -m bench.adapters --duration 20 --py-spy /tmp/bot.raw  # where the bot's CPU goes, by stage

Three processes, so that the bot's CPU and memory figures are the bot's alone:
- the bot: `python -m bot run` (`bench.botproc`), configured through the environment as an
  operator would: Slack in HTTP mode on 127.0.0.1 port 0, Discord through FakeDiscord's gateway;
- FakeRunpod (`bench.common`): Flux Schnell jobs whose queue and run times are drawn log-normal
  (medians 0.3 s and `--job-s`) and travel in the prompt; results padded to `--media-kb`;
- this one: FakeSlack, FakeDiscord and the users. A Slack command is a signed POST to the bot's
  /slack/events; its ack latency is that POST's response time (Slack wants it within 3 s). A
  Discord command is an INTERACTION_CREATE on the gateway; its latency is the time until the
  bot's interaction callback (the defer) reaches FakeDiscord (Discord also allows 3 s).

Commands go out on a fixed schedule (open loop): a slow bot does not slow the users down. After
the last one the bench waits until every result is in the fakes (or `--drain-timeout`), reads
the bot's CPU and peak RSS from /proc, stops it with SIGTERM and checks its database: one job per
command, each delivered once, one Runpod job per job, each settled at exactly what FakeRunpod
billed, no money still held. Exit status 1 if any check fails.

`--workers N` starts N `run` processes on one database (`--database`: `sqlite`, a new file, or
a PostgreSQL server DSN on which a new database is made and dropped afterwards) and sends the
Slack commands round-robin to their listeners, as a load balancer would; CPU and RSS are summed
over the workers. With `--only slack` the bot is not given a Discord token at all.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import aiohttp

from bench import spy
from bench.adapters_report import report, spy_lines
from bench.bot_records import Records, check, read_records
from bench.botproc import (
    BotProcess,
    ProcStats,
    clean_environment,
    listening_ports,
    profile_by_package,
)
from bench.chat_users import (
    SIGNING_SECRET,
    Platforms,
    Users,
    all_seen,
    issue,
    make_platforms,
    settle_discord_acks,
)
from bench.common import (
    API_KEY,
    FakeProcess,
    ServerJob,
    billed,
    throwaway_postgres,
)

ENDPOINT = "black-forest-labs-flux-1-schnell"
START_TIMEOUT_S = 60.0
POLL_S = 0.25  # how often the fakes are checked while waiting for the bot
IDLE_S = 2.0  # how long the bot's idle CPU is measured


def bot_environment(
    p: Platforms, runpod_url: str, folder: Path, max_global: int, database: str, discord: bool
) -> dict[str, str]:
    """What an operator would set: tokens, the fakes' addresses, a database, loopback listeners."""
    discord_settings = {
        "DISCORD_TOKEN": p.discord.bot_token,
        "BOT_DISCORD__API_BASE": p.discord.api_base,
        "BOT_DISCORD__GATEWAY_URL": p.discord.gateway_url,
        "BOT_DISCORD__GUILDS": json.dumps([p.discord.guild.id]),
    }
    return clean_environment(
        {
            "BOT_CONFIG": str(folder / "absent.toml"),  # defaults and these variables only
            "RUNPOD_API_KEY": API_KEY,
            "BOT_RUNPOD__BASE_URL": runpod_url,
            "BOT_STORAGE__DATABASE": database,
            "BOT_STORAGE__SPOOL": str(folder / "spool"),
            "BOT_HTTP__HOST": "127.0.0.1",
            "BOT_HTTP__PORT": "0",
            "BOT_SECURITY__ALLOW_PRIVATE_URLS": "true",  # FakeRunpod's results are on 127.0.0.1
            "BOT_JOBS__MAX_GLOBAL": str(max_global),
            "SLACK_BOT_TOKEN": p.slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "BOT_SLACK__API_URL": p.slack.api_url,
            "BOT_SLACK__HOST": "127.0.0.1",
            "BOT_SLACK__PORT": "0",
            **(discord_settings if discord else {}),
        }
    )


@asynccontextmanager
async def fresh_database(where: str, folder: Path) -> AsyncIterator[str]:
    """`sqlite`: a new file in `folder`; a PostgreSQL server DSN: a new database, dropped after."""
    if where == "sqlite":
        yield str(folder / "bot.db")
        return
    with throwaway_postgres(where) as dsn:
        yield dsn


async def wait_ready(
    bot: BotProcess, p: Platforms, http: aiohttp.ClientSession, *, discord: bool
) -> None:
    """Until Slack's listener answers (its URL added to `p`) and, with Discord, Discord's
    commands are synced and its gateway session is READY."""
    deadline = time.monotonic() + START_TIMEOUT_S
    guild = p.discord.guild
    url = ""
    while time.monotonic() < deadline:
        if not bot.running():
            raise RuntimeError("the bot exited during start; see its log")
        if not url:
            url = await _slack_events_url(bot.pid, http)
        if url and (
            not discord
            or (p.discord.commands.get(guild.id) and p.discord.gateway.live_session(guild))
        ):
            p.slack_urls.append(url)
            return
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"the bot was not ready within {START_TIMEOUT_S:.0f} s")


async def _slack_events_url(pid: int, http: aiohttp.ClientSession) -> str:
    """The bot listens twice (Runpod webhooks, Slack); Slack's listener is the one with a health
    route under /slack."""
    for port in listening_ports(pid):
        try:
            async with http.get(f"http://127.0.0.1:{port}/slack/health") as response:
                if response.status == 200:
                    return f"http://127.0.0.1:{port}/slack/events"
        except aiohttp.ClientError:
            continue
    return ""


async def drain(p: Platforms, timeout: float) -> float:
    """Until every accepted command's result is visible, or `timeout`; returns the wait.

    Polled a few times a second: the fakes' own waiters would rescan every message on each of
    thousands of changes, in the process that also measures the latencies.
    """
    start = time.monotonic()
    for _ in range(math.ceil(timeout / POLL_S)):
        if all_seen(p):
            break
        await asyncio.sleep(POLL_S)
    return time.monotonic() - start


def total_stats(bots: Sequence[BotProcess]) -> ProcStats:
    """CPU and RSS summed over the workers."""
    each = [bot.stats() for bot in bots]
    return ProcStats(
        sum(s.cpu_s for s in each), sum(s.rss_mb for s in each), sum(s.peak_rss_mb for s in each)
    )


async def idle_cpu_rate(bots: Sequence[BotProcess]) -> float:
    """The bot's CPU seconds per second with nothing to do (gateway heartbeats, timers)."""
    cpu, wall = total_stats(bots).cpu_s, time.monotonic()
    await asyncio.sleep(IDLE_S)
    return (total_stats(bots).cpu_s - cpu) / (time.monotonic() - wall)


async def load(users: Users, args: argparse.Namespace) -> float:
    """Each platform's commands at `args.rate`; returns the worst lateness of a send."""
    senders = {
        "slack": lambda k: users.slack(k, f"s{k}"),
        "discord": lambda k: users.discord(k, f"d{k}"),
    }
    chosen = [args.only] if args.only else list(senders)
    return max(await asyncio.gather(*(issue(args.rate, args.duration, senders[p]) for p in chosen)))


@dataclass
class Run:
    args: argparse.Namespace
    p: Platforms
    late_s: float  # the most delayed command left this late: did the load generator keep up
    wall_s: float  # first command to last result
    drain_s: float  # last command to last result
    idle_cpu: float
    before: ProcStats  # the bot after start and warm-up
    after: ProcStats  # the bot after the last result
    runpod_cpu_s: float
    driver_cpu_s: float
    records: Records
    server: dict[str, ServerJob]
    costs: dict[str, Decimal]
    clock_offset: float  # time.time() - time.monotonic(), to compare the bot's times with ours
    log: list[str]
    returncode: int | None


async def bench(args: argparse.Namespace) -> Run:
    p = make_platforms(args.users)
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        FakeProcess() as runpod,
        p.slack,
        p.discord,
        aiohttp.ClientSession(timeout=timeout) as http,
    ):
        await runpod.endpoint(ENDPOINT, pad_bytes=args.media_kb * 1024)
        discord = args.only != "slack"
        with tempfile.TemporaryDirectory(prefix="bench-adapters-") as tmp:
            folder = Path(tmp)
            async with fresh_database(args.database, folder) as database:
                env = bot_environment(
                    p, runpod.base_url, folder, args.max_global, database, discord
                )
                profile = Path(args.profile) if args.profile else None
                async with AsyncExitStack() as stack:
                    bots = []
                    for n in range(args.workers):
                        log_path = folder / f"bot-{n}.log"
                        bot = await stack.enter_async_context(
                            BotProcess(env, log_path, profile=profile)
                        )
                        await wait_ready(bot, p, http, discord=discord)
                        bots.append(bot)
                    users = Users(p, http, job_s=args.job_s, seed=args.seed)
                    warm_up = [users.slack(0, "sw")] + ([users.discord(0, "dw")] if discord else [])
                    await asyncio.gather(*warm_up)
                    await drain(p, args.drain_timeout)
                    idle = await idle_cpu_rate(bots)
                    before, driver_cpu = total_stats(bots), time.process_time()
                    runpod_cpu = (await runpod.usage())["cpu_s"]
                    start = time.monotonic()
                    async with _spying(bots[0].pid, args.py_spy), collector_paused():
                        late = await load(users, args)
                        drained = await drain(p, args.drain_timeout)
                    wall = time.monotonic() - start
                    after, driver_cpu = total_stats(bots), time.process_time() - driver_cpu
                    runpod_cpu = (await runpod.usage())["cpu_s"] - runpod_cpu
                returncodes = {bot.returncode for bot in bots}
                settle_discord_acks(p)
                records = await read_records(database)
            logs = [
                (folder / f"bot-{n}.log").read_text(errors="replace") for n in range(args.workers)
            ]
            log_text = "".join(logs)
            if args.log:
                Path(args.log).write_text(log_text)
            log = log_text.splitlines()
        server = await runpod.jobs()
        costs = await billed(runpod.base_url, server)
    return Run(
        args, p, late, wall, drained, idle, before, after, runpod_cpu, driver_cpu,
        records, server, costs, time.time() - time.monotonic(), log, max(returncodes, key=bool),
    )  # fmt: skip


@asynccontextmanager
async def collector_paused() -> AsyncIterator[None]:
    """No garbage collection in this process while it times the bot's acks: a full collection
    of the fakes' thousands of messages stopped its loop for up to a second, and that showed as
    the bot's latency. What is garbage meanwhile is collected after."""
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


def _spying(pid: int, path: str | None) -> AbstractAsyncContextManager[None]:
    return spy.spying(pid, Path(path)) if path else nullcontext()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of commands")
    parser.add_argument("--rate", type=float, default=5.0, help="commands per second per platform")
    parser.add_argument("--users", type=int, default=50, help="users per platform")
    parser.add_argument("--only", choices=("slack", "discord"), help="load one platform only")
    parser.add_argument("--job-s", type=float, default=2.0, help="median run time of a job")
    parser.add_argument("--media-kb", type=int, default=200, help="size of each result file")
    parser.add_argument("--max-global", type=int, default=100, help="the bot's jobs.max_global")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--workers", type=int, default=1, help="run processes (needs --only slack)")
    parser.add_argument(
        "--database", default="sqlite", help="sqlite (a new file) or a PostgreSQL server DSN"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--log", metavar="PATH", help="keep a copy of the bot's log here")
    parser.add_argument(
        "--profile", metavar="PATH", help="run the bot under cProfile, its stats written here"
    )
    parser.add_argument(
        "--py-spy", metavar="PATH", help="py-spy the bot (first worker) while measured, to PATH"
    )
    args = parser.parse_args(argv)
    if args.workers > 1 and args.only != "slack":
        parser.error("--workers above 1 needs --only slack (Discord's gateway would need shards)")
    load_average = os.getloadavg()[0]
    run = asyncio.run(bench(args))
    problems = check(run.p, run.records, run.server, run.costs)
    if run.returncode != 0:
        problems.append(f"the bot exited with status {run.returncode}")
    report(run, problems)
    print(f"  nproc {os.cpu_count()}, load average at the start {load_average:.2f}")
    if args.profile:
        print("\n  bot CPU by package (cProfile own time, whole run; its overhead inflates it):")
        for package, seconds in profile_by_package(Path(args.profile)):
            print(f"    {package:48}{seconds:8.2f} s")
    if args.py_spy:
        print(*spy_lines(run, Path(args.py_spy)), sep="\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
