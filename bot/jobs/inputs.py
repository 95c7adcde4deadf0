"""The files members give a job (the image to `/edit`, the recording to `/transcribe`), kept.

Platforms hand them over as links that stop working: Discord's attachment URLs are signed and
expire after about a day. A job's inputs are fetched once when it is submitted (the same fetch
reads a recording's length for its hold) and written here, `<inputs>/<job id>/input-N.ext`,
so a Reroll or Variations of a week-old job can give Runpod the bot's own signed link to the
copy (`bot.jobs.links`, served by the `[http]` listener) instead of the dead one.

The folder is bounded: inputs older than `storage.inputs_keep_days` are removed, and above
`storage.inputs_max_mb` the oldest go first (checked on a save, at most once a minute).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from bot.delivery import MediaFile
from bot.jobs.archive import Archive

log = logging.getLogger(__name__)

DAY_S = 24 * 3600
TRIM_EVERY_S = 60.0  # trimming reads every folder: at most this often per process


@dataclass(frozen=True)
class DiskUse:
    jobs: int
    bytes: int

    def describe(self) -> str:
        return f"{self.jobs} job(s), {self.bytes / (1024 * 1024):.1f} MB"


class Inputs:
    def __init__(self, root: Path, *, keep_days: float, max_bytes: int) -> None:
        self.root = root
        self.keep_s = keep_days * DAY_S
        self.max_bytes = max_bytes
        self._folder = Archive(root)
        self._next_trim = 0.0

    def save(self, job_id: str, files: tuple[MediaFile, ...]) -> bool:
        """Keep a job's inputs, then trim the folder; False (logged) when the disk refuses:
        the job still runs from the original links, only a late Reroll may then fail."""
        try:
            self._folder.save(job_id, files)
        except OSError as exc:
            log.error("job %s: could not keep its inputs in %s: %s", job_id, self.root, exc)
            return False
        if time.monotonic() >= self._next_trim:
            self._next_trim = time.monotonic() + TRIM_EVERY_S
            try:
                self.trim()
            except OSError as exc:  # e.g. another process removed a folder as this one read it
                log.warning("inputs: trimming %s failed this time: %s", self.root, exc)
        return True

    def path(self, job_id: str, filename: str) -> Path | None:
        return self._folder.path(job_id, filename)

    def trim(self, now: float | None = None) -> list[str]:
        """Remove inputs past their retention, then the oldest above the cap; their job ids."""
        now = time.time() if now is None else now
        folders = sorted(self._folder.folders(), key=lambda folder: folder[1])
        total = sum(size for _, _, size in folders)
        removed = []
        for job_id, written, size in folders:
            if total <= self.max_bytes and now - written <= self.keep_s:
                break
            self._folder.remove(job_id)
            total -= size
            removed.append(job_id)
        if removed:
            log.info("inputs: removed those of %d old job(s)", len(removed))
        return removed

    def disk_use(self) -> DiskUse:
        folders = self._folder.folders()
        return DiskUse(len(folders), sum(size for _, _, size in folders))
