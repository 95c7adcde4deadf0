"""The Runpod client over the wire against FakeRunpod: statuses, errors, retries, waiting.

Every test that takes `http` runs twice: over httpx's own pool, and over aiohttp's pool
(`bot.runpod.transport`, what the bot uses), so that the transport keeps "never sent" and
"maybe started" apart exactly as httpcore does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.runpod.client import (
    BadRequest,
    ConnectionFailed,
    MalformedResponse,
    NotFound,
    RateLimited,
    RunpodClient,
    RunpodStatus,
    RunpodTimeout,
    Unauthorized,
    UpstreamError,
)
from bot.runpod.transport import aiohttp_client
from tests.conftest import API_KEY
from tests.fakes.runpod import FakeRunpod

FLUX = "black-forest-labs-flux-1-schnell"
QWEN = "qwen3-32b-awq"


@pytest.fixture(params=["httpcore", "aiohttp"])
async def http(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    if request.param == "aiohttp":
        made = aiohttp_client(max_connections=100, timeout=5.0, headers={})
    else:
        made = httpx.AsyncClient(trust_env=False)
    async with made as client:
        yield client


def client(http: httpx.AsyncClient, fake: FakeRunpod, **options: object) -> RunpodClient:
    defaults: dict[str, object] = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "max_retries": 3}
    return RunpodClient(http, base_url=fake.base_url, api_key=API_KEY, **{**defaults, **options})  # type: ignore[arg-type]


async def test_run_then_status_reports_every_stage_and_the_output(
    http: httpx.AsyncClient, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.endpoints[FLUX].queue_delay = 0.1
    runpod_fake.endpoints[FLUX].execution_time = 0.1
    rp = client(http, runpod_fake)
    job = await rp.run(FLUX, {"prompt": "a fox", "width": 512, "height": 512})
    assert job.status == "IN_QUEUE" and not job.final
    seen = {(await rp.status(FLUX, job.id)).status}
    await runpod_fake.wait_status(job.id, "IN_PROGRESS")
    seen.add((await rp.status(FLUX, job.id)).status)
    final = await rp.wait(FLUX, job.id, timeout_s=5)
    assert seen == {"IN_QUEUE", "IN_PROGRESS"}
    assert final.status == "COMPLETED" and final.output["image_url"].endswith(".png")
    assert str(final.output["cost"]) == "0.0006291456"
    assert final.execution_ms is not None and final.worker_id


@pytest.mark.parametrize("outcome", ["FAILED", "TIMED_OUT", "CANCELLED"])
async def test_final_failure_states_are_returned_with_their_error(
    http: httpx.AsyncClient, runpod_fake: FakeRunpod, outcome: str
) -> None:
    runpod_fake.next_job(FLUX, outcome=outcome, error="worker ran out of memory")  # type: ignore[arg-type]
    rp = client(http, runpod_fake)
    job = await rp.run(FLUX, {"prompt": "a fox"})
    final = await rp.wait(FLUX, job.id, timeout_s=5)
    assert final.status == outcome and final.final
    if outcome == "FAILED":
        assert final.error == "worker ran out of memory"


async def test_wrong_key_is_unauthorized_and_not_retried(
    http: httpx.AsyncClient, runpod_fake: FakeRunpod
) -> None:
    rp = RunpodClient(http, base_url=runpod_fake.base_url, api_key="wrong", backoff_base_s=0.01)
    with pytest.raises(Unauthorized):
        await rp.status(FLUX, "nope")
    assert runpod_fake.count("status") == 1


async def test_bad_input_and_unknown_jobs_carry_the_api_message(
    http: httpx.AsyncClient, runpod_fake: FakeRunpod
) -> None:
    rp = client(http, runpod_fake)
    with pytest.raises(NotFound):
        await rp.status(FLUX, "no-such-job")
    with pytest.raises(NotFound):
        await rp.run("no-such-endpoint", {"prompt": "x"})
    runpod_fake.fail_next("run", 400)
    with pytest.raises(BadRequest):
        await rp.run(FLUX, {"prompt": "x"})


async def test_status_retries_5xx_429_resets_and_garbage_then_succeeds(
    http: httpx.AsyncClient, runpod_fake: FakeRunpod
) -> None:
    rp = client(http, runpod_fake, max_retries=4)
    job = await rp.run(FLUX, {"prompt": "a fox"})
    runpod_fake.fail_next("status", 503)
    runpod_fake.fail_next("status", 429, retry_after=0.01)
    runpod_fake.reset_next("status")
    runpod_fake.malformed_next("status")
    state = await rp.status(FLUX, job.id)
    assert state.id == job.id
    assert runpod_fake.count("status") == 5


async def test_retries_give_up_with_a_typed_error(
    http: httpx.AsyncClient, runpod_fake: FakeRunpod
) -> None:
    rp = client(http, runpod_fake, max_retries=2)
    runpod_fake.fail_next("health", 502, count=3)
    with pytest.raises(UpstreamError) as failed:
        await rp.health(FLUX)
    assert failed.value.status == 502 and runpod_fake.count("health") == 3
    runpod_fake.fail_next("health", 429, count=3, retry_after=0.01)
    with pytest.raises(RateLimited) as limited:
        await rp.health(FLUX)
    assert limited.value.retry_after == pytest.approx(0.01)
    runpod_fake.malformed_next("health", count=3)
    with pytest.raises(MalformedResponse):
        await rp.health(FLUX)


async def test_run_is_retried_on_429_but_never_after_a_5xx_or_reset(
    http: httpx.AsyncClient, runpod_fake: FakeRunpod
) -> None:
    rp = client(http, runpod_fake)
    runpod_fake.fail_next("run", 429, count=2, retry_after=0.01)
    assert (await rp.run(FLUX, {"prompt": "a"})).status == "IN_QUEUE"
    assert runpod_fake.count("run") == 3 and len(runpod_fake.jobs) == 1
    runpod_fake.fail_next("run", 502)
    with pytest.raises(UpstreamError) as upstream:
        await rp.run(FLUX, {"prompt": "b"})
    assert upstream.value.maybe_started
    runpod_fake.reset_next("run")
    with pytest.raises(ConnectionFailed) as reset:
        await rp.run(FLUX, {"prompt": "c"})
    assert reset.value.maybe_started
    assert runpod_fake.count("run") == 5, "/run was retried after it may have started a job"


async def test_run_is_retried_when_the_connection_was_never_made(http: httpx.AsyncClient) -> None:
    rp = RunpodClient(
        http, base_url="http://127.0.0.1:9/v2", api_key=API_KEY, max_retries=1, backoff_base_s=0.01
    )
    with pytest.raises(ConnectionFailed) as failed:
        await rp.run(FLUX, {"prompt": "a"})
    assert not failed.value.maybe_started


async def test_slow_answers_time_out(http: httpx.AsyncClient, runpod_fake: FakeRunpod) -> None:
    rp = client(http, runpod_fake, request_timeout_s=0.2, max_retries=0)
    runpod_fake.slow_next("health", 1.0)
    with pytest.raises(RunpodTimeout):
        await rp.health(FLUX)


async def test_wait_gives_up_at_its_timeout(
    http: httpx.AsyncClient, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.endpoints[FLUX].execution_time = 30
    rp = client(http, runpod_fake)
    job = await rp.run(FLUX, {"prompt": "slow"})
    with pytest.raises(RunpodTimeout):
        await rp.wait(FLUX, job.id, timeout_s=1.0)


async def test_a_10_second_job_costs_two_requests_and_is_seen_within_a_round_trip(
    http: httpx.AsyncClient, runpod_fake: FakeRunpod
) -> None:
    """The headline: long-polling sees completion ~1 round trip late, with 1-2 requests."""
    runpod_fake.endpoints[FLUX].queue_delay = 0.5
    runpod_fake.endpoints[FLUX].execution_time = 9.5
    rp = client(http, runpod_fake)
    job = await rp.run(FLUX, {"prompt": "ten seconds"})
    final = await rp.wait(FLUX, job.id, timeout_s=30)
    seen = time.monotonic()
    completed = runpod_fake.completed_at(job.id)
    assert final.status == "COMPLETED" and completed is not None
    delay = seen - completed
    requests = runpod_fake.count("status-sync") + runpod_fake.count("status")
    print(
        f"\n10 s job: {requests} requests while waiting, seen {delay * 1000:.1f} ms after completion"
    )
    assert requests <= 2
    assert delay < 0.05


async def test_without_long_poll_the_fallback_polls_adaptively(
    http: httpx.AsyncClient, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.status_sync = False
    runpod_fake.endpoints[FLUX].execution_time = 2.0
    rp = client(http, runpod_fake)
    job = await rp.run(FLUX, {"prompt": "two seconds"})
    final = await rp.wait(FLUX, job.id, timeout_s=10)
    delay = time.monotonic() - (runpod_fake.completed_at(job.id) or 0)
    assert final.status == "COMPLETED"
    # Seen within the pause in force at 2 s (0.25 x 1.5^4 = 1.27 s); the pauses are jittered
    # (shortened at random), so the phase of the polls against completion varies run to run.
    assert runpod_fake.count("status") <= 9 and delay < 1.3


async def test_stream_returns_new_chunks_only(
    http: httpx.AsyncClient, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.endpoints[QWEN].execution_time = 0.4
    rp = client(http, runpod_fake)
    job = await rp.run(QWEN, {"prompt": "tell me a story", "max_tokens": 20})
    chunks: list[object] = []
    status = "IN_QUEUE"
    while status not in ("COMPLETED", "FAILED"):
        status, new = await rp.stream(QWEN, job.id)
        chunks.extend(new)
        await runpod_fake.wait_until(lambda: True, timeout=0.05)
    assert len(chunks) >= 2


async def test_openai_route_streams_chat_chunks(
    http: httpx.AsyncClient, runpod_fake: FakeRunpod
) -> None:
    rp = client(http, runpod_fake)
    pieces = [
        chunk
        async for chunk in rp.chat_stream(
            QWEN,
            model="Qwen/Qwen3-32B-AWQ",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=10,
        )
    ]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in pieces if c.get("choices"))
    assert text and any(c.get("usage") for c in pieces)


async def test_cancel_stops_a_running_job(http: httpx.AsyncClient, runpod_fake: FakeRunpod) -> None:
    runpod_fake.endpoints[FLUX].execution_time = 30
    rp = client(http, runpod_fake)
    job = await rp.run(FLUX, {"prompt": "slow"})
    assert (await rp.cancel(FLUX, job.id)).status == "CANCELLED"
    assert (await rp.wait(FLUX, job.id, timeout_s=5)).status == "CANCELLED"


def test_unknown_states_are_treated_as_running() -> None:
    state = RunpodStatus.parse({"id": "x", "status": "WARMING_UP"})
    assert not state.final
    with pytest.raises(MalformedResponse):
        RunpodStatus.parse({"status": "COMPLETED"})


async def test_a_wait_for_a_free_connection_never_counts_as_a_sent_run(
    runpod_fake: FakeRunpod,
) -> None:
    """A pool timeout happens before anything is sent, so /run may safely try again."""
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(trust_env=False, limits=limits) as http:
        runpod_fake.endpoints[FLUX].execution_time = 30
        rp = client(http, runpod_fake, max_retries=0)
        job = await rp.run(FLUX, {"prompt": "holds the only connection"})
        waiting = asyncio.create_task(rp.wait(FLUX, job.id, timeout_s=5))
        await runpod_fake.wait_until(lambda: runpod_fake.count("status-sync") == 1)
        timeout = httpx.Timeout(5.0, pool=0.05)
        with pytest.raises(RunpodTimeout) as failed:
            await rp._call(
                "POST", f"{FLUX}/run", json={"input": {}}, starts_job=True, timeout=timeout
            )  # type: ignore[arg-type]
        assert not failed.value.maybe_started
        waiting.cancel()


async def test_with_a_webhook_the_wait_is_only_an_occasional_backstop(
    http: httpx.AsyncClient, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.status_sync = False
    runpod_fake.endpoints[FLUX].execution_time = 3.0
    rp = client(http, runpod_fake)
    job = await rp.run(FLUX, {"prompt": "pushed"})
    assert (await rp.wait(FLUX, job.id, timeout_s=20, backstop=True)).status == "COMPLETED"
    assert runpod_fake.count("status") <= 3
