"""A small result's first offer is made from the downloaded bytes, not read back from the spool;
an offer after a refusal reads the spool, and the allowance is given back either way.

Reading each result back from the spool a moment after writing it was a thread hand-off and
two file reads per job (`bench.many_jobs`, docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import open_core
from bot.jobs.allowance import Allowance
from tests.conftest import make_settings
from tests.fakes.delivery import RecordingDelivery
from tests.fakes.runpod import FakeRunpod
from tests.jobs.support import submit

FAST = {"retry_first_s": 0.01, "retry_max_s": 0.05}


def spool_reads(monkeypatch: pytest.MonkeyPatch, root: Path) -> list[Path]:
    """Every file read back from under `root`, as it happens."""
    reads: list[Path] = []
    read_bytes = Path.read_bytes

    def counted(self: Path) -> bytes:
        if self.is_relative_to(root):
            reads.append(self)
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", counted)
    return reads


@pytest.mark.parametrize("refusals", [0, 4])
async def test_the_first_offer_needs_no_read_of_the_spool(
    tmp_path: Path, runpod_fake: FakeRunpod, monkeypatch: pytest.MonkeyPatch, refusals: int
) -> None:
    settings = make_settings(tmp_path, runpod_fake, delivery=FAST)
    reads = spool_reads(monkeypatch, settings.storage.spool_dir)
    async with open_core(settings) as core:
        delivery = RecordingDelivery(fail_deliveries=refusals)
        await submit(core, "a fox --size 256x256", delivery=delivery)
        await delivery.wait_for(lambda: delivery.results)
        await core.jobs.wait_idle(10)

    (result,) = delivery.results
    assert len(result.files) == 1 and result.files[0].data[:4] == b"\x89PNG"
    assert (result.files[0].width, result.files[0].height) == (256, 256)
    # one refused offer tries every route with the same bytes; the next offer reads the spool
    assert len(reads) == (0 if refusals == 0 else 1)
    assert [p.name for p in reads] == [result.files[0].filename] * len(reads)


def test_the_allowance_lends_what_fits_and_a_loan_is_repaid_once() -> None:
    allowance = Allowance(1000, largest=600)
    assert allowance.borrow(601) is None  # one big result: read back from the spool
    first = allowance.borrow(600)
    assert first is not None
    assert allowance.borrow(600) is None  # would not fit
    first.repay()
    first.repay()  # every path may repay: only the first counts
    second, third = allowance.borrow(600), allowance.borrow(400)
    assert second is not None and third is not None
    assert allowance.borrow(1) is None
