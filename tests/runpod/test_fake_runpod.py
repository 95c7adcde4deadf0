"""The Runpod fake behaves as the docs say, so every later test can trust it.

Raw httpx against a real socket; waits are on the fake's state-change events, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.fakes import media
from tests.fakes.runpod import FakeRunpod, bill, dimensions, dumps

KEY = "test-key"
FLUX_DEV, FLUX_SCHNELL = "black-forest-labs-flux-1-dev", "black-forest-labs-flux-1-schnell"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeRunpod]:
    async with FakeRunpod(api_key=KEY, webhook_retry_s=0.05, runsync_min_wait_ms=1) as server:
        server.endpoint("img")
        yield server


@pytest.fixture
async def client(fake: FakeRunpod) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.base_url, headers=AUTH, timeout=5) as http:
        yield http


def decimal_json(response: httpx.Response) -> Any:
    return response.json(parse_float=Decimal)


async def run(client: httpx.AsyncClient, endpoint: str, **body: Any) -> str:
    response = await client.post(f"/{endpoint}/run", json={"input": {}, **body})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "IN_QUEUE"
    return str(response.json()["id"])


async def test_auth_accepts_bearer_and_raw_key(fake: FakeRunpod) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        missing = await http.get("/img/health")
        wrong = await http.get("/img/health", headers={"Authorization": "Bearer nope"})
        raw = await http.get("/img/health", headers={"Authorization": KEY})
        bearer = await http.get("/img/health", headers=AUTH)
        unknown = await http.get("/nope/health", headers=AUTH)
    assert (missing.status_code, missing.text) == (401, "401 Unauthorized")
    assert wrong.status_code == 401
    assert raw.status_code == bearer.status_code == 200
    assert unknown.status_code == 404
    assert fake.count("health") == 5 and fake.count("health", "img") == 4
    assert fake.requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_run_status_lifecycle_and_timing(fake: FakeRunpod, client: httpx.AsyncClient) -> None:
    fake.endpoint(FLUX_DEV, queue_delay=0.05, execution_time=0.05)
    job_id = await run(client, FLUX_DEV, input={"prompt": "a cat", "width": 512, "height": 512})
    assert (await client.get(f"/{FLUX_DEV}/status/{job_id}")).json() == {
        "id": job_id,
        "status": "IN_QUEUE",
    }
    await fake.wait_status(job_id, "IN_PROGRESS")
    running = (await client.get(f"/{FLUX_DEV}/status/{job_id}")).json()
    assert running["status"] == "IN_PROGRESS" and running["delayTime"] >= 50
    assert "output" not in running and running["workerId"]
    job = await fake.wait_status(job_id, "COMPLETED")
    done = decimal_json(await client.get(f"/{FLUX_DEV}/status/{job_id}"))
    assert done["status"] == "COMPLETED" and done["executionTime"] >= 50
    assert done["output"]["cost"] == Decimal("0.00524288") == job.cost
    assert done["output"]["image_url"] == f"{fake.root_url}/media/{job_id}/0.png"
    assert job.started is not None and job.completed is not None
    assert job.started - job.created >= 0.05 and job.completed - job.started >= 0.05
    assert fake.completed_at(job_id) == job.completed
    assert fake.requests[-1].route == "status" and fake.requests[-1].job_id == job_id


async def test_png_is_real_and_sized_from_input(
    fake: FakeRunpod, client: httpx.AsyncClient
) -> None:
    fake.endpoint("qwen-image")
    for inp, size in (
        ({"width": 512, "height": 768}, (512, 768)),
        ({"size": "640*480"}, (640, 480)),
        ({"size": "320x200"}, (320, 200)),
        ({"aspect_ratio": "16:9"}, (1024, 576)),
        ({}, (1024, 1024)),
    ):
        job_id = await run(client, "qwen-image", input=inp)
        job = await fake.wait_status(job_id, "COMPLETED")
        image = await client.get(job.output["image_url"])
        assert image.headers["content-type"] == "image/png"
        assert media.png_size(image.content) == size
        assert job.cost == Decimal("0.01")


def test_dimensions_map_ratios_and_resolutions() -> None:
    assert dimensions({"aspect_ratio": "9:16", "resolution": "2k"}) == (1152, 2048)
    assert dimensions({"aspect_ratio": "16:9", "resolution": "480p"}, (1280, 720)) == (854, 480)
    assert dimensions({}, (1280, 720)) == (1280, 720)
    assert dimensions({"size": "720p"}, (1280, 720)) == (1280, 720)


async def test_flux_costs_match_the_documented_examples(
    fake: FakeRunpod, client: httpx.AsyncClient
) -> None:
    fake.endpoint(FLUX_DEV)
    fake.endpoint(FLUX_SCHNELL)
    dev = await client.post(f"/{FLUX_DEV}/runsync", json={"input": {"width": 512, "height": 512}})
    schnell = await client.post(f"/{FLUX_SCHNELL}/runsync", json={"input": {"prompt": "x"}})
    assert decimal_json(dev)["output"]["cost"] == Decimal("0.00524288")
    assert decimal_json(schnell)["output"]["cost"] == Decimal("0.0025165824")
    assert b'"cost": 0.0025165824' in schnell.content  # an exact JSON number
    bad = await client.post(f"/{FLUX_DEV}/runsync", json={"input": {"width": 500, "height": 512}})
    assert bad.json()["status"] == "FAILED" and "divisible by 64" in bad.json()["error"]


def test_billing_rounds_up_at_ten_decimals() -> None:
    assert bill(Decimal("0.00000000001")) == Decimal("0.0000000001")
    assert bill(0.1) == Decimal("0.1")
    assert dumps({"cost": Decimal("0.30")}) == '{"cost": 0.3}'


async def test_custom_cost_and_no_cost(fake: FakeRunpod, client: httpx.AsyncClient) -> None:
    fake.endpoint("priced", cost=lambda inp, out: 0.123)
    fake.endpoint("free", cost=lambda inp, out: None)
    priced = await client.post("/priced/runsync", json={"input": {}})
    free = await client.post("/free/runsync", json={"input": {}})
    assert decimal_json(priced)["output"]["cost"] == Decimal("0.123")
    assert "cost" not in free.json()["output"] and free.json()["status"] == "COMPLETED"


async def test_runsync_answers_final_or_the_running_job(
    fake: FakeRunpod, client: httpx.AsyncClient
) -> None:
    fake.endpoint("quick", execution_time=0.02)
    done = await client.post("/quick/runsync", json={"input": {}})
    assert done.json()["status"] == "COMPLETED" and done.json()["id"].startswith("sync-")
    fake.endpoint("long", execution_time=5.0)
    started = time.monotonic()
    pending = await client.post("/long/runsync", params={"wait": 50}, json={"input": {}})
    assert 0.05 <= time.monotonic() - started < 2.0
    assert pending.json()["status"] in ("IN_QUEUE", "IN_PROGRESS")
    assert "output" not in pending.json()
    assert fake.jobs[pending.json()["id"]].sync and fake.requests[-1].query == {"wait": "50"}
    cancelled = await client.post(f"/long/cancel/{pending.json()['id']}")
    assert cancelled.json()["status"] == "CANCELLED"


async def test_bad_bodies_answer_400(fake: FakeRunpod, client: httpx.AsyncClient) -> None:
    missing = await client.post("/img/run", json={"prompt": "no input"})
    broken = await client.post("/img/run", content=b"{not json")
    huge = {"input": {"blob": "x" * (10 * 2**20)}}
    too_big = await client.post("/img/run", json=huge)
    fits_sync = await client.post("/img/runsync", json=huge)
    assert missing.status_code == broken.status_code == too_big.status_code == 400
    assert "input" in missing.json()["error"]
    assert fits_sync.status_code == 200
    assert sum(not j.sync for j in fake.jobs.values()) == 0


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_fail_next_is_one_shot_and_ordered(
    fake: FakeRunpod, client: httpx.AsyncClient, status: int
) -> None:
    fake.fail_next("run", status, count=2, retry_after=1)
    fake.fail_next("run", 429, retry_after=0.25)
    first, second, third, fourth = [
        await client.post("/img/run", json={"input": {}}) for _ in "1234"
    ]
    assert (first.status_code, second.status_code, third.status_code) == (status, status, 429)
    assert first.headers["retry-after"] == "1" and third.headers["retry-after"] == "0.25"
    assert fourth.status_code == 200 and len(fake.jobs) == 1
    assert [r.status for r in fake.requests] == [status, status, 429, 200]


async def test_faults_can_target_one_endpoint(fake: FakeRunpod, client: httpx.AsyncClient) -> None:
    fake.endpoint("other")
    fake.fail_next("health", 503, endpoint_id="other")
    assert (await client.get("/img/health")).status_code == 200
    assert (await client.get("/other/health")).status_code == 503
    assert (await client.get("/other/health")).status_code == 200


async def test_reset_slow_and_malformed(fake: FakeRunpod, client: httpx.AsyncClient) -> None:
    job_id = await run(client, "img")
    fake.reset_next("status")
    with pytest.raises(httpx.TransportError):
        await client.get(f"/img/status/{job_id}")
    assert fake.requests[-1].status is None
    fake.malformed_next("status")
    garbled = await client.get(f"/img/status/{job_id}")
    assert garbled.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        garbled.json()
    fake.slow_next("status", 0.5)
    with pytest.raises(httpx.ReadTimeout):
        await client.get(f"/img/status/{job_id}", timeout=0.05)
    fake.slow_next("status", 0.05)
    started = time.monotonic()
    assert (await client.get(f"/img/status/{job_id}")).status_code == 200
    assert time.monotonic() - started >= 0.05


async def test_media_faults_and_media_404(fake: FakeRunpod, client: httpx.AsyncClient) -> None:
    fake.fail_next("media", 503)
    fake.job_outcome("img", "MEDIA_404")
    lost = await fake.wait_status(await run(client, "img"), "COMPLETED")
    kept = await fake.wait_status(await run(client, "img"), "COMPLETED")
    assert (await client.get(lost.output["image_url"])).status_code == 503  # the fault first
    assert (await client.get(lost.output["image_url"])).status_code == 404
    assert (await client.get(kept.output["image_url"])).status_code == 200
    assert fake.count("media", "img") == 3


@pytest.mark.parametrize(
    ("outcome", "status", "error"),
    [
        ("FAILED", "FAILED", "CUDA out of memory"),
        ("TIMED_OUT", "TIMED_OUT", None),
        ("CANCELLED", "CANCELLED", None),
    ],
)
async def test_forced_outcomes(
    fake: FakeRunpod, client: httpx.AsyncClient, outcome: Any, status: str, error: str | None
) -> None:
    fake.job_outcome("img", outcome, error=error)
    job_id = await run(client, "img")
    await fake.wait_status(job_id, status)
    body = (await client.get(f"/img/status/{job_id}")).json()
    assert body["status"] == status and "output" not in body
    assert body.get("error") == error and fake.jobs[job_id].cost is None
    assert fake.completed_at(job_id) is not None


async def test_failed_job_can_be_retried(fake: FakeRunpod, client: httpx.AsyncClient) -> None:
    fake.next_job("img", outcome="FAILED", error="boom")
    job_id = await run(client, "img")
    await fake.wait_status(job_id, "FAILED")
    retried = await client.post(f"/img/retry/{job_id}")
    assert retried.json() == {"id": job_id, "status": "IN_QUEUE"}
    job = await fake.wait_status(job_id, "COMPLETED")
    assert job.output["image_url"] and job.error is None and job.retries == 1
    assert (await client.post(f"/img/retry/{job_id}")).status_code == 400
    health = (await client.get("/img/health")).json()
    assert health["jobs"]["retried"] == 1 and health["jobs"]["completed"] == 1


async def test_vanished_job_answers_404_while_running(
    fake: FakeRunpod, client: httpx.AsyncClient
) -> None:
    fake.job_outcome("img", "VANISH")
    job_id = await run(client, "img")
    await fake.wait_until(lambda: fake.jobs[job_id].vanished)
    assert (await client.get(f"/img/status/{job_id}")).status_code == 404
    assert fake.jobs[job_id].status == "IN_PROGRESS" and fake.completed_at(job_id) is None


async def test_policy_execution_timeout(fake: FakeRunpod, client: httpx.AsyncClient) -> None:
    fake.endpoint("slowgen", execution_time=10.0)
    job_id = await run(client, "slowgen", policy={"executionTimeout": 50})
    job = await fake.wait_status(job_id, "TIMED_OUT")
    assert job.completed is not None and job.started is not None
    assert 0.04 < job.completed - job.started < 1.0


async def test_retention_then_404() -> None:
    async with FakeRunpod(api_key=KEY, retention_s=0.05, runsync_retention_s=0.02) as fake:
        fake.endpoint("img")
        async with httpx.AsyncClient(base_url=fake.base_url, headers=AUTH) as client:
            job_id = await run(client, "img")
            await fake.wait_status(job_id, "COMPLETED")
            assert (await client.get(f"/img/status/{job_id}")).status_code == 200
            sync_id = (await client.post("/img/runsync", json={"input": {}})).json()["id"]
            await fake.wait_until(lambda: fake.jobs[sync_id].expired)
            assert not fake.jobs[job_id].expired  # runsync results go first
            await fake.wait_until(lambda: fake.jobs[job_id].expired)
            for gone in (job_id, sync_id, "never-existed"):
                assert (await client.get(f"/img/status/{gone}")).status_code == 404
            image = await client.get(fake.jobs[job_id].output["image_url"])
            assert image.status_code == 200  # media URLs outlive /status (7 days)


async def test_cancel_and_purge(fake: FakeRunpod, client: httpx.AsyncClient) -> None:
    fake.endpoint("queued", queue_delay=10.0)
    job_id = await run(client, "queued")
    cancelled = await client.post(f"/queued/cancel/{job_id}")
    assert cancelled.json() == {"id": job_id, "status": "CANCELLED"}
    assert fake.jobs[job_id].status == "CANCELLED" and fake.completed_at(job_id) is not None
    assert (await client.get(f"/queued/status/{job_id}")).json()["status"] == "CANCELLED"
    assert (await client.post("/queued/cancel/missing")).status_code == 404
    waiting = [await run(client, "queued") for _ in range(3)]
    health = (await client.get("/queued/health")).json()
    assert health["jobs"]["inQueue"] == 3 and health["workers"] == {"idle": 1, "running": 0}
    purged = await client.post("/queued/purge-queue")
    assert purged.json() == {"removed": 3, "status": "completed"}
    assert (await client.get(f"/queued/status/{waiting[0]}")).status_code == 404


async def test_text_native_output_and_max_tokens(
    fake: FakeRunpod, client: httpx.AsyncClient
) -> None:
    fake.endpoint("qwen3-32b-awq", kind="text", reply_tokens=30)
    body = {"input": {"prompt": "say something nice", "max_tokens": 7}}
    first = decimal_json(await client.post("/qwen3-32b-awq/runsync", json=body))
    again = decimal_json(await client.post("/qwen3-32b-awq/runsync", json=body))
    [batch] = first["output"]
    text = batch["choices"][0]["tokens"][0]
    assert len(text.split()) == 7 and text == again["output"][0]["choices"][0]["tokens"][0]
    assert batch["usage"] == {"input": 3, "output": 7}
    assert batch["cost"] == Decimal(10) * 10 / 1_000_000


async def test_stream_hands_out_only_new_chunks(
    fake: FakeRunpod, client: httpx.AsyncClient
) -> None:
    fake.endpoint("llm", kind="text", execution_time=0.2, stream_chunks=4, reply_tokens=8)
    job_id = await run(client, "llm", input={"prompt": "hello there"})
    job = await fake.wait_status(job_id, "IN_PROGRESS")
    early = (await client.get(f"/llm/stream/{job_id}")).json()
    assert early["id"] == job_id and len(early["stream"]) == job.stream_sent < 4
    await fake.wait_until(lambda: job.stream_ready >= 2)
    middle = (await client.get(f"/llm/stream/{job_id}")).json()
    assert len(early["stream"]) + len(middle["stream"]) == job.stream_sent >= 2
    await fake.wait_status(job_id, "COMPLETED")
    last = (await client.get(f"/llm/stream/{job_id}")).json()
    assert last["status"] == "COMPLETED" and job.stream_sent == 4
    assert (await client.get(f"/llm/stream/{job_id}")).json()["stream"] == []
    chunks = early["stream"] + middle["stream"] + last["stream"]
    pieces = [c["output"]["choices"][0]["tokens"][0] for c in chunks]
    assert "".join(pieces) == job.output[0]["choices"][0]["tokens"][0]


async def test_openai_route_plain_and_streaming(
    fake: FakeRunpod, client: httpx.AsyncClient
) -> None:
    fake.endpoint("qwen3-32b-awq", kind="text", think=True, reply_tokens=6)
    url = "/qwen3-32b-awq/openai/v1/chat/completions"
    body = {"model": "Qwen/Qwen3-32B-AWQ", "messages": [{"role": "user", "content": "hi you"}]}
    plain = (await client.post(url, json=body)).json()
    content = plain["choices"][0]["message"]["content"]
    assert content.startswith("<think>") and plain["choices"][0]["finish_reason"] == "stop"
    assert plain["usage"] == {"prompt_tokens": 2, "completion_tokens": 11, "total_tokens": 13}
    async with client.stream("POST", url, json={**body, "stream": True, "max_tokens": 3}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") async for line in r.aiter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "<think> weighing the" and chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    assert (await client.post("/img/openai/v1/chat/completions", json=body)).status_code == 404


async def test_video_speech_and_transcription_outputs(
    fake: FakeRunpod, client: httpx.AsyncClient
) -> None:
    fake.endpoint("wan-2-5", kind="video")
    fake.endpoint("minimax-speech-02-hd", kind="speech")
    fake.endpoint("whisper-v3-large", kind="transcription", segments=True)
    video = decimal_json(
        await client.post("/wan-2-5/runsync", json={"input": {"size": "832*480", "duration": 10}})
    )["output"]
    assert video["cost"] == Decimal("0.6")
    mp4 = await client.get(video["video_url"])
    assert mp4.headers["content-type"] == "video/mp4" and mp4.content[4:8] == b"ftyp"
    speech_outputs = []
    for text in ("short", "a much longer sentence to be spoken aloud by the fake"):
        body = {"input": {"prompt": text}}
        response = await client.post("/minimax-speech-02-hd/runsync", json=body)
        speech_outputs.append(decimal_json(response)["output"])
    wavs = [await client.get(out["audio_url"]) for out in speech_outputs]
    assert all(w.headers["content-type"] == "audio/wav" for w in wavs)
    assert media.wav_seconds(wavs[0].content) < media.wav_seconds(wavs[1].content)
    assert speech_outputs[0]["cost"] == Decimal("0.00025")
    heard = decimal_json(
        await client.post("/whisper-v3-large/runsync", json={"input": {"audio": "http://a/b.wav"}})
    )["output"]
    assert heard["cost"] == bill(Decimal(len(heard["transcription"])) * Decimal("0.00005"))
    assert " ".join(s["text"] for s in heard["segments"]) == heard["transcription"]


async def test_webhook_delivered_and_retried(fake: FakeRunpod, client: httpx.AsyncClient) -> None:
    received: list[dict[str, Any]] = []
    answers = [500, 200]

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=answers.pop(0) if answers else 500)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        job_id = await run(client, "img", webhook=url)
        job = fake.jobs[job_id]
        await fake.wait_until(lambda: len(job.webhook_attempts) == 2)
        assert [a.status for a in job.webhook_attempts] == [500, 200]
        assert job.webhook_attempts[1].at - job.webhook_attempts[0].at >= 0.05
        assert received[1]["id"] == job_id and received[1]["status"] == "COMPLETED"
        assert received[1]["output"]["image_url"] == job.output["image_url"]
        failing = fake.jobs[await run(client, "img", webhook=url)]  # 500 forever: 3 attempts
        await fake.wait_until(lambda: len(failing.webhook_attempts) == 3)
    finally:
        await runner.cleanup()
    gone = fake.jobs[await run(client, "img", webhook=url)]  # nobody listening any more
    await fake.wait_until(lambda: len(gone.webhook_attempts) == 3)
    assert all(a.status is None and a.error for a in gone.webhook_attempts)


async def test_many_concurrent_jobs_finish_on_time(fake: FakeRunpod) -> None:
    fake.endpoint("bulk", queue_delay=lambda inp: inp["n"] % 5 / 100, execution_time=0.05)
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=fake.base_url, headers=AUTH, limits=limits) as http:
        ids = await asyncio.gather(*(run(http, "bulk", input={"n": n}) for n in range(200)))
    await fake.wait_until(lambda: all(fake.jobs[i].status == "COMPLETED" for i in ids), 10)
    for job_id in ids:
        job = fake.jobs[job_id]
        assert job.completed is not None
        planned = job.created + job.input["n"] % 5 / 100 + 0.05
        assert 0 <= job.completed - planned < 0.5
