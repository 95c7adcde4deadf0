"""`python -m bot run` as a child process: started from environment settings, measured from /proc.

The bot runs exactly as deployed (composition root, Runpod webhook listener, hold sweeper, every
adapter whose token is set) in its own process, so its CPU seconds and peak RSS are its own and
not those of the fakes or of the load generator. Its listeners bind port 0; `listening_ports`
finds what the OS picked from /proc, so nothing races for a port chosen in advance. Linux only.
"""

from __future__ import annotations

import asyncio
import os
import pstats
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

from bench.common import ROOT
from bot.config import ENV_ALIASES

STOP_TIMEOUT_S = 30.0
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


@dataclass(frozen=True)
class ProcStats:
    cpu_s: float  # user + system, all threads, since the process started
    rss_mb: float
    peak_rss_mb: float  # VmHWM: the high-water mark of the resident set


def clean_environment(settings: dict[str, str]) -> dict[str, str]:
    """This environment without any bot setting (`BOT_*`, `RUNPOD_API_KEY`...), plus `settings`."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("BOT_") and name not in ENV_ALIASES
    }
    return kept | settings


def proc_stats(pid: int) -> ProcStats:
    # Fields after the command name, which may itself contain ") ": utime and stime are 14 and 15.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        status[name] = value.split()
    return ProcStats(cpu, int(status["VmRSS"][0]) / 1024, int(status["VmHWM"][0]) / 1024)


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process listens on: its socket inodes matched against /proc/net/tcp{,6}."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed since it was listed
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        lines = path.read_text().splitlines()[1:] if path.exists() else []
        for line in lines:
            cols = line.split()
            if cols[3] == _LISTEN and cols[9] in inodes:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def profile_by_package(path: Path, top: int = 12) -> list[tuple[str, float]]:
    """Own CPU time (cProfile's tottime) summed per top-level package, the largest first.

    Time in the event loop's `select` is waiting, not work, and is left out.
    """
    totals: dict[str, float] = {}
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    for (filename, _, function), (_, _, own, _, _) in stats.items():
        if "poll" in function and filename == "~":
            continue
        package = _package(filename, function)
        totals[package] = totals.get(package, 0.0) + own
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def _package(filename: str, function: str) -> str:
    if filename == "~":  # a C function: "<method 'send' of '_socket.socket' objects>" -> by type
        found = re.search(r"of '([^']+)'", function)
        return f"C: {found[1]}" if found else "C: " + function.split(" at ")[0].strip("<>")
    path = Path(filename)
    if path.is_relative_to(ROOT) and "site-packages" not in path.parts:
        parts = path.relative_to(ROOT).parts
        return "/".join(parts[:2]) if parts[0] == "adapters" else parts[0]  # bot, adapters/slack
    for anchor in ("site-packages", "python3.11"):
        if anchor in path.parts:
            rest = path.parts[path.parts.index(anchor) + 1 :]
            return rest[0].removesuffix(".py") if rest else filename
    return filename


class BotProcess:
    """`python -m bot run` with `env`, its output (the bot's log) appended to `log_path`;
    under cProfile, its profile written to `profile` at exit, when that is given."""

    def __init__(self, env: dict[str, str], log_path: Path, *, profile: Path | None = None) -> None:
        self._env = env
        self._log_path = log_path
        self._profile = profile
        self._log: IO[bytes] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def stats(self) -> ProcStats:
        return proc_stats(self.pid)

    async def __aenter__(self) -> Self:
        self._log = self._log_path.open("ab")
        profiler = ["-m", "cProfile", "-o", str(self._profile)] if self._profile else []
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *profiler,
            "-m",
            "bot",
            "run",
            cwd=ROOT,
            env=self._env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> int | None:
        """SIGTERM (the bot's clean shutdown), then SIGKILL if it has not exited in time."""
        if self._proc is None:
            return self.returncode
        proc, self._proc = self._proc, None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self.returncode = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.returncode
