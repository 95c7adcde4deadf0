"""The spool's size check after each delivery reads the folder only when it may be over its cap.

With 1,000 jobs delivered together, reading every stored result after each delivery cost 80 %
of the bot's CPU (66 ms per job in `bench.many_jobs`): the folder is read once, then its size
is kept up to date as results are saved.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.delivery import MediaFile
from bot.jobs.spool import Spool


def _png(job_id: str, size: int) -> tuple[MediaFile, ...]:
    return (MediaFile(f"{job_id}.png", "image/png", bytes(size)),)


def test_a_spool_under_its_cap_is_read_once_not_after_every_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "spool"
    spool = Spool(root, max_bytes=1_000_000)
    reads = []
    iterdir = Path.iterdir

    def counted(self: Path) -> Iterator[Path]:
        if self == root:
            reads.append(self)
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", counted)
    for i in range(50):
        spool.save(f"job{i}", _png(f"job{i}", 1000))
        assert spool.trim(keep=set()) == []
    assert len(reads) == 1


def test_the_kept_size_still_trims_once_saves_pass_the_cap(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2500)
    spool.save("first", _png("first", 1000))
    assert spool.trim(keep=set()) == []
    for job_id in ("second", "third"):
        spool.save(job_id, _png(job_id, 1000))
    assert len(spool.trim(keep={"third"})) == 1
    assert spool.load("third") is not None
