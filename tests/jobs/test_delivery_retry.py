"""A paid result reaches the member: spooled before the charge, offered on every route with
backoff until shown, `undeliverable` past the horizon, and the spool stays bounded."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

from bot.app import Core, open_core
from bot.delivery import MediaFile, Route
from bot.jobs.lifecycle import LATE_NOTE
from bot.jobs.past import Viewer, past_result
from bot.jobs.spool import Spool
from bot.listener import Listener
from tests.conftest import make_settings
from tests.fakes.delivery import DeliveryHub, RecordingDelivery
from tests.fakes.runpod import FakeRunpod
from tests.identities import ALICE, HERE
from tests.jobs.support import spent, submit

FAST = {"retry_first_s": 0.01, "retry_max_s": 0.05}


async def state_of(core: Core, job_id: str) -> str:
    job = await core.jobs.job(job_id, HERE)
    assert job is not None
    return job.state


async def test_a_refused_result_falls_back_to_the_next_route_and_is_delivered_once(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    settings = make_settings(tmp_path, runpod_fake, delivery=FAST)
    async with open_core(settings) as core:
        delivery = RecordingDelivery(fail_deliveries=6)
        submitted, _ = await submit(core, "a fox --size 256x256", delivery=delivery)
        await delivery.wait_for(lambda: delivery.results)
        await core.jobs.wait_idle(10)
        assert await state_of(core, submitted.job_id) == "delivered"
        charged, held = await spent(core)

    assert delivery.refused == [*Route, Route.EDIT, Route.MESSAGE]
    assert delivery.routes == [Route.DIRECT] and len(delivery.results[0].files) == 1
    assert (charged, held) == (Decimal("0.0001572864"), 0)


async def test_past_the_horizon_a_job_is_undeliverable_charged_shown_then_posted_late(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    settings = make_settings(tmp_path, runpod_fake, delivery={**FAST, "horizon_s": 0.2})
    async with open_core(settings) as core:
        delivery = RecordingDelivery(fail_deliveries=10_000)
        submitted, _ = await submit(core, "a fox --size 256x256", delivery=delivery)
        job_id = submitted.job_id
        while await state_of(core, job_id) != "undeliverable":
            seen = len(delivery.refused)
            await delivery.wait_for(lambda seen=seen: len(delivery.refused) > seen)
        job = await core.jobs.job(job_id, HERE)
        shown = await core.jobs.kept.files(job_id)
        past = await past_result(core.jobs, job_id, Viewer(HERE, ALICE.user))  # what /show posts
        late_cancel = await core.jobs.cancel(job_id, HERE, user=ALICE.user)
        charged_while_undeliverable = (await spent(core))[0]
        assert not delivery.results
        delivery.fail_deliveries = 0  # the platform answers again
        await delivery.wait_for(lambda: delivery.results)
        await core.jobs.wait_idle(10)
        assert await state_of(core, job_id) == "delivered"

    assert job is not None and job.error and job.error.startswith("could not be delivered")
    assert shown and shown[0].data[:4] == b"\x89PNG"
    assert past is not None and past.state == "undeliverable" and past.kept
    assert late_cancel == "This job has already finished; it was charged $0.0001572864."
    assert charged_while_undeliverable == Decimal("0.0001572864")
    (result,) = delivery.results
    assert LATE_NOTE in result.notes and result.files[0].data == shown[0].data


async def test_after_a_restart_the_result_comes_from_the_spool_when_runpod_url_is_gone(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    settings = make_settings(tmp_path, runpod_fake, delivery=FAST)
    async with open_core(settings) as core:
        refusing = RecordingDelivery(fail_deliveries=10_000)
        submitted, _ = await submit(core, "a fox --size 256x256", delivery=refusing)
        await refusing.wait_for(lambda: refusing.refused)  # charged, not delivered
    # The process died after the charge; Runpod's media URL now answers 404.
    for job in runpod_fake.jobs.values():
        job.media = None
    hub = DeliveryHub()
    async with open_core(settings) as core:
        core.jobs.register_platform("test", hub)
        assert await core.jobs.resume("test") == 1
        await core.jobs.wait_idle(10)
        assert await state_of(core, submitted.job_id) == "delivered"
        charged, held = await spent(core)

    (result,) = hub.by_channel["c1"].results
    assert len(result.files) == 1 and result.files[0].data[:4] == b"\x89PNG"
    assert (result.files[0].width, result.files[0].height) == (256, 256)
    assert (charged, held) == (Decimal("0.0001572864"), 0)


def test_the_spool_removes_the_oldest_delivered_results_when_over_its_cap(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2500)
    for age, job_id in enumerate(["new", "middle", "old", "oldest"]):
        spool.save(job_id, (MediaFile(f"{job_id}.png", "image/png", bytes(1000)),))
        stamp = 1_000_000 - age * 100
        for path in (tmp_path / "spool" / job_id).iterdir():
            os.utime(path, (stamp, stamp))

    removed = spool.trim(keep={"oldest"})  # not delivered yet: never removed

    assert removed == ["old", "middle"]
    assert spool.load("oldest") and spool.load("new")
    assert spool.load("old") is None and spool.load("middle") is None


async def test_the_last_route_links_to_the_result_served_by_the_bot(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    settings = make_settings(
        tmp_path, runpod_fake, delivery=FAST, http={"public_url": "http://bot.example"}
    )
    async with open_core(settings) as core:
        listener = Listener(core.jobs, host="127.0.0.1", port=0)
        await listener.start()
        try:
            delivery = RecordingDelivery(fail_deliveries=3)  # edit, message and DM refused
            await submit(core, "a fox --size 256x256", delivery=delivery)
            await delivery.wait_for(lambda: delivery.results)
            (result,) = delivery.results
            link = result.files[0].source_url or ""
            local = link.replace("http://bot.example", f"http://127.0.0.1:{listener.port}")
            served = await core.http.get(local)
            base, _, name = local.rsplit("/", 2)
            forged = await core.http.get(f"{base}/{'0' * 32}/{name}")
        finally:
            await listener.stop()

    assert delivery.routes == [Route.LINK] and link.startswith("http://bot.example/results/")
    assert served.status_code == 200 and served.content[:4] == b"\x89PNG"
    assert forged.status_code == 403
