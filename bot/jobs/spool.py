"""Paid results on local disk from before the charge until they are delivered.

`JobRunner` writes a job's files here before the settle commits, so a restart, or a Runpod
output URL that has expired in the meantime, cannot lose a result the member paid for. Delivery
(and `/show`, and the bot's signed links) read them back from here. The folder is bounded:
once over `storage.spool_max_mb`, delivered results are removed oldest first; results not yet
delivered are never removed. The folder is read only when it may be over its cap: its size is
counted once, then kept up to date as results are saved (reading it after every delivery cost
80 % of the bot's CPU with 1,000 jobs in flight). A trim goes down to nine tenths of the cap,
and the next one waits until a tenth of the cap more was saved: a full spool (the steady state
of a busy bot: 1 GB is a thousand 1 MB images) was read whole after every delivery, a third of
the bot's CPU at 150 commands/s. So the folder may pass its cap by up to a tenth.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from pathlib import Path

from bot.delivery import MediaFile
from bot.jobs.archive import Archive

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._folder = Archive(root)
        self._margin = max_bytes // 10
        self._stored: int | None = None  # bytes in the folder, once counted
        self._read_above = max_bytes  # read the folder again once `_stored` passes this
        self._lock = threading.Lock()  # save and trim run in worker threads

    def save(self, job_id: str, files: tuple[MediaFile, ...]) -> bool:
        """Keep the files; False (and logged) when the disk refuses: delivery then works from
        memory only, as without a spool."""
        try:
            self._folder.save(job_id, files)
        except OSError as exc:
            log.error("job %s: could not write the result to %s: %s", job_id, self.root, exc)
            return False
        with self._lock:
            if self._stored is not None:  # an over-count (a result saved twice) only reads again
                self._stored += sum(len(f.data) for f in files)
        return True

    def load(self, job_id: str) -> tuple[MediaFile, ...] | None:
        return self._folder.load(job_id)

    def names(self, job_id: str) -> tuple[tuple[str, str], ...] | None:
        return self._folder.names(job_id)

    def path(self, job_id: str, filename: str) -> Path | None:
        return self._folder.path(job_id, filename)

    def may_be_over(self) -> bool:
        """Whether `trim` may have work: the folder is not counted yet, or is over its cap. The
        caller asks before reading which results to keep (a read of every active job)."""
        with self._lock:
            return self._stored is None or self._stored > self._read_above

    def trim(self, keep: Collection[str]) -> list[str]:
        """Remove the oldest results not in `keep` until the spool is at nine tenths of its
        cap; their ids. Results not yet delivered (`keep`) can hold it above that: then the
        next trim waits for a tenth of the cap more, not for the next delivery."""
        with self._lock:  # saves wait while the folder is read (only when it may be over)
            if self._stored is not None and self._stored <= self._read_above:
                return []
            folders = sorted(self._folder.folders(), key=lambda folder: folder[1])
            total = sum(size for _, _, size in folders)
            removed = []
            if total > self.max_bytes:
                for job_id, _, size in folders:
                    if total <= self.max_bytes - self._margin:
                        break
                    if job_id in keep:
                        continue
                    self._folder.remove(job_id)
                    total -= size
                    removed.append(job_id)
            self._stored = total
            self._read_above = max(self.max_bytes, total + self._margin)
        if removed:
            log.info(
                "spool over %d bytes: removed %d delivered result(s)", self.max_bytes, len(removed)
            )
        return removed
