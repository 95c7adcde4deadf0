"""The spool's size check after each delivery reads the folder only when it may be over its cap.

With 1,000 jobs delivered together, reading every stored result after each delivery cost 80 %
of the bot's CPU (66 ms per job in `bench.many_jobs`): the folder is read once, then its size
is kept up to date as results are saved. Once full, it is read again only after a tenth of its
cap more was saved (at 150 commands/s a full spool read after every delivery cost a third of
the bot's CPU, `bench.adapters`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.delivery import MediaFile
from bot.jobs.spool import Spool


def _png(job_id: str, size: int) -> tuple[MediaFile, ...]:
    return (MediaFile(f"{job_id}.png", "image/png", bytes(size)),)


def reads_of(root: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Each listing of the spool's folder, as it happens (the costly read of a trim)."""
    reads: list[Path] = []
    iterdir = Path.iterdir

    def counted(self: Path) -> Iterator[Path]:
        if self == root:
            reads.append(self)
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", counted)
    return reads


def folder_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.glob("*/*.png"))


def test_a_spool_under_its_cap_is_read_once_not_after_every_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "spool"
    spool = Spool(root, max_bytes=1_000_000)
    reads = reads_of(root, monkeypatch)
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


def deliver(spool: Spool, job_id: str, keep: set[str] | None = None) -> list[str]:
    """What the job engine does per result: save it, and after its delivery trim if need be."""
    spool.save(job_id, _png(job_id, 1000))
    return spool.trim(keep or set()) if spool.may_be_over() else []


def test_a_full_spool_is_read_once_per_tenth_of_its_cap_not_after_every_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "spool"
    spool = Spool(root, max_bytes=100_000)
    removed = []
    for n in range(100):  # full: 100 delivered results of 1,000 bytes (and their manifests)
        removed += deliver(spool, f"old{n}")
    reads = reads_of(root, monkeypatch)
    for n in range(200):
        removed += deliver(spool, f"new{n}")
        assert folder_bytes(root) <= 110_000  # at most a tenth over the cap
    assert len(reads) <= 21  # one read per 10,000 bytes saved (was: one per delivery)
    saved = [f"old{n}" for n in range(100)] + [f"new{n}" for n in range(200)]
    assert removed == saved[: len(removed)]  # oldest first
    assert folder_bytes(root) >= 80_000


def test_results_not_yet_delivered_are_kept_over_the_cap_without_a_read_per_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "spool"
    spool = Spool(root, max_bytes=50_000)
    reads = reads_of(root, monkeypatch)
    waiting = {f"job{n}" for n in range(100)}  # a platform outage: nothing can be delivered
    for n in range(100):
        assert deliver(spool, f"job{n}", keep=waiting) == []
    assert folder_bytes(root) == 100_000  # every paid result kept, whatever the cap
    assert len(reads) <= 11  # once per 5,000 bytes saved past the cap (was: 51)
    # The outage is over, all of them delivered: the next trim, a tenth of the cap of new
    # results later, removes them, oldest first.
    removed = []
    for n in range(10):
        removed += deliver(spool, f"after{n}")
    assert removed == [f"job{n}" for n in range(len(removed))]
    assert 40_000 <= folder_bytes(root) <= 50_000
