"""The job engine end to end: core + real httpx against FakeRunpod, a recording Delivery, on
SQLite and on PostgreSQL (the `db_place` fixture)."""

from __future__ import annotations

import asyncio
import io
import itertools
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

from bot.app import Core, open_core
from bot.config import Settings
from bot.errors import InvalidRequest, PolicyDenied
from bot.jobs.invocation import Submitted
from bot.ledger.quota import QuotaExceeded
from tests.conftest import make_settings
from tests.fakes.delivery import DeliveryHub, RecordingDelivery
from tests.fakes.runpod import FakeRunpod
from tests.identities import BOB, HERE
from tests.jobs.support import spent, submit


@pytest.fixture
def settings(tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str) -> Settings:
    """This module's `core` runs on each backend in turn."""
    return make_settings(tmp_path, runpod_fake, database=db_place)


async def test_image_job_is_delivered_as_a_real_png_and_charged_the_billed_cost(
    core: Core, runpod_fake: FakeRunpod
) -> None:
    _, delivery = await submit(core, "a red fox --size 512x512 --seed 5")
    await delivery.wait_for(lambda: delivery.ended)
    (result,) = delivery.results
    image = Image.open(io.BytesIO(result.files[0].data))
    assert image.size == (512, 512) and image.format == "PNG"
    assert result.cost == Decimal("0.0006291456")
    assert result.seeds == (5,)
    assert "left today" in result.remaining
    assert await spent(core) == (Decimal("0.0006291456"), Decimal(0))
    assert runpod_fake.count("run") == 1


async def test_batch_runs_copies_concurrently_and_delivers_them_together(
    core: Core, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.endpoints["black-forest-labs-flux-1-schnell"].execution_time = 0.3
    _, delivery = await submit(core, "three cats --size 256x256 --count 3")
    await delivery.wait_for(lambda: delivery.ended)
    (result,) = delivery.results
    assert len(result.files) == 3 and len(set(result.seeds)) == 3
    assert result.cost == 3 * Decimal("0.0001572864")
    starts = sorted(job.started or 0 for job in runpod_fake.jobs.values())
    assert starts[-1] - starts[0] < 0.3, "copies ran one after another"


async def test_text_reply_streams_then_arrives_whole_and_charged(
    core: Core, runpod_fake: FakeRunpod
) -> None:
    endpoint = runpod_fake.endpoints["qwen3-32b-awq"]
    endpoint.execution_time, endpoint.think, endpoint.stream_chunks = 1.0, True, 5
    _, delivery = await submit(core, "tell me about foxes --max-tokens 40", command="ask")
    await delivery.wait_for(lambda: delivery.ended)
    (result,) = delivery.results
    assert result.text and "<think>" not in result.text
    partial = [u.partial_text for u in delivery.progress_updates if u.partial_text]
    assert partial and all(result.text.startswith(p.rstrip()) or p in result.text for p in partial)
    assert result.cost > 0 and (await spent(core))[0] == result.cost


async def test_transcription_posts_text_and_subtitles(core: Core, runpod_fake: FakeRunpod) -> None:
    runpod_fake.endpoints["whisper-v3-large"].segments = True
    _, delivery = await submit(
        core, "", command="transcribe", media=("https://files.example.com/talk.mp3",)
    )
    await delivery.wait_for(lambda: delivery.ended)
    (result,) = delivery.results
    names = sorted(f.filename.rsplit(".", 1)[1] for f in result.files)
    assert names == ["srt", "txt"] and result.text
    assert b"-->" in next(f.data for f in result.files if f.filename.endswith(".srt"))


@pytest.mark.parametrize(
    ("command", "text", "media", "kind"),
    [
        ("video", "a fox runs", ("https://files.example.com/fox.png",), "video/"),
        ("speak", "hello there, friends", (), "audio/"),
    ],
)
async def test_video_and_speech_results_are_real_media(
    core: Core, command: str, text: str, media: tuple[str, ...], kind: str
) -> None:
    _, delivery = await submit(core, text, command=command, media=media)
    await delivery.wait_for(lambda: delivery.ended)
    assert not delivery.failures, delivery.failures
    assert delivery.results[0].files[0].content_type.startswith(kind)


async def test_speech_without_a_billed_cost_is_charged_for_the_audio_it_made(
    core: Core, runpod_fake: FakeRunpod
) -> None:
    """Chatterbox is billed per second of audio: with no `cost` in the output, the charge is
    the length of the WAV that came back (1.2 s here, billed as 2 s), not the hold's worst case."""
    runpod_fake.endpoints["chatterbox-turbo"].cost = lambda _input, _output: None
    _, delivery = await submit(
        core, "hello there, friends --model chatterbox-turbo", command="speak"
    )
    await delivery.wait_for(lambda: delivery.ended)
    (result,) = delivery.results
    assert result.files[0].content_type == "audio/wav"
    assert result.cost == Decimal("0.002")
    assert await spent(core) == (Decimal("0.002"), 0)


@pytest.mark.parametrize("outcome", ["FAILED", "TIMED_OUT", "CANCELLED", "VANISH", "MEDIA_404"])
async def test_a_job_that_ends_badly_is_released_and_the_user_told(
    core: Core, runpod_fake: FakeRunpod, outcome: str
) -> None:
    runpod_fake.next_job(
        "black-forest-labs-flux-1-schnell", outcome=outcome, error="worker exploded"
    )  # type: ignore[arg-type]
    _, delivery = await submit(core, "a fox")
    await delivery.wait_for(lambda: delivery.ended)
    assert not delivery.results
    (failure,) = delivery.failures
    assert failure.charged == 0 and "Nothing was charged" in failure.message
    assert await spent(core) == (Decimal(0), Decimal(0))


@pytest.mark.parametrize("route", ["run", "status-sync", "status", "media"])
async def test_rate_limits_and_server_errors_are_retried_to_success(
    core: Core, runpod_fake: FakeRunpod, route: str
) -> None:
    status = 429 if route == "run" else 503
    runpod_fake.fail_next(route, status, count=2, retry_after=0.05)  # type: ignore[arg-type]
    _, delivery = await submit(core, "a fox --size 256x256")
    await delivery.wait_for(lambda: delivery.ended)
    assert delivery.results and not delivery.failures
    assert runpod_fake.count("run") in (1, 3)  # 429s were refused, so one job ran
    assert len(runpod_fake.jobs) == 1


async def test_a_server_error_on_run_is_not_retried_and_not_charged(
    core: Core, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.fail_next("run", 500)
    _, delivery = await submit(core, "a fox")
    await delivery.wait_for(lambda: delivery.ended)
    assert runpod_fake.count("run") == 1, "/run retried after a 500: the job could run twice"
    assert "Nothing was charged" in delivery.failures[0].message
    assert await spent(core) == (Decimal(0), Decimal(0))


async def test_quota_refusal_reaches_the_user_at_once_and_nothing_runs(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    settings = make_settings(
        tmp_path, runpod_fake, database=db_place, quotas={"daily_usd": "0.001"}
    )
    async with open_core(settings) as core:
        with pytest.raises(QuotaExceeded) as refused:
            await submit(core, "a fox --model flux-dev")
    assert "daily limit is $0.001" in refused.value.message
    assert runpod_fake.count("run") == 0


async def test_an_expensive_job_waits_for_confirmation_before_holding(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    settings = make_settings(
        tmp_path, runpod_fake, database=db_place, jobs={"confirm_above_usd": "0.01"}
    )
    async with open_core(settings) as core:
        submitted, delivery = await submit(core, "a fox --model flux-dev")
        assert submitted.awaiting_confirmation and delivery.confirmations
        assert await spent(core) == (Decimal(0), Decimal(0)) and runpod_fake.count("run") == 0
        with pytest.raises(PolicyDenied):
            await core.jobs.confirm(submitted.job_id, HERE, user="bob")
        await core.jobs.confirm(submitted.job_id, HERE, user="alice", delivery=delivery)
        await delivery.wait_for(lambda: delivery.ended)
        assert delivery.results[0].cost == Decimal("0.02097152")


async def test_confirm_and_cancel_at_the_same_moment_exactly_one_takes_effect(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    settings = make_settings(
        tmp_path, runpod_fake, database=db_place, jobs={"confirm_above_usd": "0.01"}
    )
    async with open_core(settings) as core:
        submitted, delivery = await submit(core, "a fox --model flux-dev")
        confirmed, said = await asyncio.gather(
            core.jobs.confirm(submitted.job_id, HERE, user="alice", delivery=delivery),
            core.jobs.cancel(submitted.job_id, HERE, user="alice"),
            return_exceptions=True,
        )
        await core.jobs.wait_idle(10)
        job = await core.jobs.job(submitted.job_id, HERE)
        assert job is not None
        if isinstance(confirmed, Submitted):  # Confirm won; the Cancel then stopped or missed it
            assert said != "Cancelled. Nothing was charged."
        else:  # Cancel won: the Confirm is told so, and nothing ran
            assert said == "Cancelled. Nothing was charged."
            assert isinstance(confirmed, InvalidRequest) and "cancelled" in confirmed.message
            assert runpod_fake.count("run") == 0
        assert await spent(core) == (job.cost or Decimal(0), Decimal(0))
        assert job.state in ("delivered", "cancelled")


async def test_the_requester_can_cancel_a_running_job_and_pays_nothing(
    core: Core, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.endpoints["black-forest-labs-flux-1-schnell"].execution_time = 30
    submitted, delivery = await submit(core, "a slow fox")
    await runpod_fake.wait_until(
        lambda: any(j.status == "IN_PROGRESS" for j in runpod_fake.jobs.values())
    )
    with pytest.raises(PolicyDenied):
        await core.jobs.cancel(submitted.job_id, HERE, user="bob")
    await core.jobs.cancel(submitted.job_id, HERE, user="alice")
    await delivery.wait_for(lambda: delivery.ended)
    assert "Cancelled" in delivery.failures[0].message
    assert runpod_fake.count("cancel") == 1
    assert await spent(core) == (Decimal(0), Decimal(0))


async def test_the_watchdog_ends_a_job_that_runs_too_long(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    runpod_fake.endpoints["black-forest-labs-flux-1-schnell"].execution_time = 60
    settings = make_settings(tmp_path, runpod_fake, database=db_place, jobs={"timeout_s": 1.5})
    async with open_core(settings) as core:
        _, delivery = await submit(core, "a slow fox")
        await delivery.wait_for(lambda: delivery.ended)
        assert "longer than this bot allows" in delivery.failures[0].message
        assert runpod_fake.count("cancel") == 1
        assert await spent(core) == (Decimal(0), Decimal(0))


async def test_per_user_cap_queues_jobs_with_a_visible_position(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    runpod_fake.endpoints["black-forest-labs-flux-1-schnell"].execution_time = 0.4
    settings = make_settings(tmp_path, runpod_fake, database=db_place, jobs={"max_per_user": 1})
    async with open_core(settings) as core:
        deliveries = [(await submit(core, f"fox {i} --size 256x256"))[1] for i in range(3)]
        for delivery in deliveries:
            await delivery.wait_for(lambda d=delivery: d.ended)
        positions = [u.position for u in deliveries[2].progress_updates if u.state == "queued"]
        assert positions and positions[0] == 2
        starts = sorted(j.started or 0 for j in runpod_fake.jobs.values())
        assert all(b - a >= 0.3 for a, b in itertools.pairwise(starts))


async def test_delivery_failures_are_retried_and_never_charge_twice(
    core: Core, runpod_fake: FakeRunpod
) -> None:
    delivery = RecordingDelivery(fail_deliveries=1)
    _, delivery = await submit(core, "a fox --size 256x256", delivery=delivery)
    await delivery.wait_for(lambda: delivery.ended, timeout=15)
    assert len(delivery.results) == 1
    assert (await spent(core))[0] == Decimal("0.0001572864")


async def test_a_restart_resumes_a_submitted_job_and_delivers_it_once(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    runpod_fake.endpoints["black-forest-labs-flux-1-schnell"].execution_time = 0.5
    settings = make_settings(tmp_path, runpod_fake, database=db_place)
    async with open_core(settings) as core:
        submitted, first = await submit(core, "a fox --size 256x256")
        await first.wait_for(
            lambda: any(u.state in ("IN_QUEUE", "IN_PROGRESS") for u in first.progress_updates)
        )
    # the process "died" with the job at Runpod; a new one picks it up
    hub = DeliveryHub()
    async with open_core(settings) as core:
        core.jobs.register_platform("test", hub)
        assert await core.jobs.resume("test") == 1
        await core.jobs.wait_idle(10)
        delivered = hub.by_channel["c1"]
        assert len(delivered.results) == 1 and delivered.results[0].job_id == submitted.job_id
        assert (await spent(core))[0] == Decimal("0.0001572864")
        assert await core.jobs.resume("test") == 0
    assert runpod_fake.count("run") == 1 and not first.results


async def test_webhook_completion_needs_no_polling(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    from bot.listener import Listener

    runpod_fake.endpoints["black-forest-labs-flux-1-schnell"].execution_time = 0.5
    settings = make_settings(tmp_path, runpod_fake, database=db_place)
    async with open_core(settings) as core:
        listener = Listener(core.jobs, host="127.0.0.1", port=0)
        await listener.start()
        try:
            hooked = f"http://127.0.0.1:{listener.port}"  # known only once the port is
            core.jobs._settings = replace(core.jobs._settings, webhook_url=hooked)
            core.jobs._runner._webhook_base = hooked
            _, delivery = await submit(core, "a fox --size 256x256")
            await delivery.wait_for(lambda: delivery.ended)
        finally:
            await listener.stop()
    (job,) = runpod_fake.jobs.values()
    assert delivery.results and job.webhook_attempts and job.webhook_attempts[0].status == 200
    assert runpod_fake.count("status") == 0


async def test_identical_seeded_request_is_served_from_the_archive_for_free(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    settings = make_settings(
        tmp_path, runpod_fake, database=db_place, storage={"media_dir": str(tmp_path / "media")}
    )
    async with open_core(settings) as core:
        _, first = await submit(core, "a fox --size 256x256 --seed 42")
        await first.wait_for(lambda: first.ended)
        _, second = await submit(core, "a fox --size 256x256 --seed 42")
        await second.wait_for(lambda: second.ended)
        assert second.results[0].cached and second.results[0].cost == 0
        assert second.results[0].files[0].data == first.results[0].files[0].data
        assert runpod_fake.count("run") == 1
        assert (await spent(core))[0] == first.results[0].cost


async def test_policy_blocks_terms_before_anything_is_held(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    settings = make_settings(
        tmp_path, runpod_fake, database=db_place, policy={"blocked_terms": ["gore"]}
    )
    async with open_core(settings) as core:
        with pytest.raises(PolicyDenied):
            await submit(core, "lots of GORE please")
    assert runpod_fake.count("run") == 0


async def test_other_users_do_not_share_a_personal_limit(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    settings = make_settings(tmp_path, runpod_fake, database=db_place, quotas={"daily_usd": "0.03"})
    async with open_core(settings) as core:
        _, a = await submit(core, "a fox --model flux-dev")
        await a.wait_for(lambda: a.ended)
        with pytest.raises(QuotaExceeded):
            await submit(core, "a fox --model flux-dev")
        _, b = await submit(core, "a fox --model flux-dev", who=BOB)
        await b.wait_for(lambda: b.ended)
        assert b.results


async def test_the_sweeper_keeps_holds_of_jobs_that_will_resume(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    """An old hold is stale only when its job is over: one waiting for a restart keeps it."""
    from datetime import timedelta

    runpod_fake.endpoints["black-forest-labs-flux-1-schnell"].execution_time = 30
    settings = make_settings(tmp_path, runpod_fake, database=db_place)
    async with open_core(settings) as core:
        submitted, delivery = await submit(core, "a slow fox")
        await delivery.wait_for(
            lambda: any(u.state == "IN_QUEUE" for u in delivery.progress_updates)
        )
    async with open_core(settings) as core:  # restarted; the adapter has not resumed yet
        later = core.ledger._clock() + timedelta(hours=5)
        core.ledger._clock = lambda: later
        assert await core.jobs.sweep() == []
        assert (await spent(core))[1] > 0
        job = await core.jobs.job(submitted.job_id, HERE)
        assert job is not None
        await core.db.run(
            lambda raw: raw.execute(
                "UPDATE jobs SET state = 'failed', notified = 1 WHERE id = ?", (job.id,)
            )
        )
        assert await core.jobs.sweep() == [job.id]
        assert (await spent(core))[1] == 0


async def test_crossing_a_soft_threshold_warns_the_member(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    settings = make_settings(
        tmp_path, runpod_fake, database=db_place, quotas={"daily_usd": "0.025"}
    )
    async with open_core(settings) as core:
        _, delivery = await submit(core, "a fox --model flux-dev")  # $0.02097152 of $0.025
        await delivery.wait_for(lambda: delivery.warnings)
    assert "80% of the daily limit" in delivery.warnings[0]


async def test_image_editing_sends_the_attachment_and_returns_an_image(
    core: Core, runpod_fake: FakeRunpod
) -> None:
    _, delivery = await submit(
        core, "make it snowy", command="edit", media=("https://files.example.com/fox.png",)
    )
    await delivery.wait_for(lambda: delivery.ended)
    assert delivery.results[0].files[0].content_type == "image/png"
    (job,) = runpod_fake.jobs.values()
    assert "https://files.example.com/fox.png" in str(job.input)


async def test_tracking_rides_out_a_runpod_outage_and_gives_up_only_at_the_deadline(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    """Runpod stops answering about a running job: the bot keeps asking (the job runs on and
    is billed) and, when the job's deadline passes, cancels it there and releases the hold."""
    runpod_fake.endpoints["black-forest-labs-flux-1-schnell"].execution_time = 0.5
    settings = make_settings(
        tmp_path, runpod_fake, runpod={"backoff_base_s": 0.05, "max_retries": 1}
    )
    async with open_core(settings) as core:
        runpod_fake.fail_next("status-sync", 503, count=12)
        _, survived = await submit(core, "a fox --size 256x256")
        await survived.wait_for(lambda: survived.ended, timeout=20)
        assert survived.results and runpod_fake.count("status-sync") > 12
    settings = make_settings(
        tmp_path / "down",
        runpod_fake,
        runpod={"backoff_base_s": 0.05, "max_retries": 1},
        jobs={"timeout_s": 2},
    )
    (tmp_path / "down").mkdir()
    runpod_fake.endpoints["black-forest-labs-flux-1-schnell"].execution_time = 60
    async with open_core(settings) as core:
        runpod_fake.fail_next("status-sync", 503, count=10_000)
        _, lost = await submit(core, "a fox --size 256x256")
        await lost.wait_for(lambda: lost.ended, timeout=20)
        assert "lost contact with Runpod" in lost.failures[0].message
        assert runpod_fake.count("cancel") == 1
        assert await spent(core) == (Decimal(0), Decimal(0))


async def test_a_chat_model_result_shows_what_was_asked(
    core: Core, runpod_fake: FakeRunpod
) -> None:
    """Granite takes `messages`, not `prompt`: the result still shows the user's question."""
    _, delivery = await submit(core, "why is the sky blue --model granite-4", command="ask")
    await delivery.wait_for(lambda: delivery.ended)
    assert delivery.results[0].prompt == "why is the sky blue"
