"""`GET /metrics`: jobs run through FakeRunpod, then the exposition read with prometheus-client's
own parser; each count must match what happened (success, failure, refusal, a 429 storm)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import Core, open_core
from bot.ledger.quota import QuotaExceeded
from bot.listener import Listener
from tests.conftest import make_settings
from tests.discord.support import discord_settings, running_bot
from tests.fakes.discord import FakeDiscord, point_discord_py_at
from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack
from tests.identities import ALICE, HERE
from tests.jobs.support import submit
from tests.slack.support import populate
from tests.slack.support import running_bot as running_slack

SCHNELL = "black-forest-labs-flux-1-schnell"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@asynccontextmanager
async def metrics_url(core: Core) -> AsyncIterator[str]:
    listener = Listener(core.jobs, host="127.0.0.1", port=0, metrics=core.scrape)
    await listener.start()
    try:
        yield f"http://127.0.0.1:{listener.port}/metrics"
    finally:
        await listener.stop()


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient() as client:
        response = await client.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over every sample carrying `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


async def test_metrics_count_what_happened(tmp_path: Path, runpod_fake: FakeRunpod) -> None:
    settings = make_settings(
        tmp_path, runpod_fake, quotas={"daily_usd": "0.01"}, metrics={"per_workspace": True}
    )
    async with open_core(settings) as core, metrics_url(core) as url:
        # a success
        _, ok = await submit(core, "a red fox --size 512x512")
        await ok.wait_for(lambda: ok.ended)
        # a failure at Runpod: released, not charged
        runpod_fake.job_outcome(SCHNELL, "FAILED", error="worker crashed")
        failed_job, failed = await submit(core, "a blue fox --size 512x512")
        await failed.wait_for(lambda: failed.ended)
        # a quota refusal: Flux Dev at 1024x1024 is $0.02, above the $0.01 daily limit
        with pytest.raises(QuotaExceeded):
            await submit(core, "a green fox --model flux-dev")
        # a 429 storm on /run, then the job goes through
        runpod_fake.fail_next("run", 429, count=3, retry_after=0.01)
        _, stormy = await submit(core, "a grey fox --size 512x512")
        await stormy.wait_for(lambda: stormy.ended)
        await core.jobs.wait_idle(10)

        samples = await scrape(url)

    jobs = "runpod_bot_jobs_total"
    assert value(samples, jobs, state="held", command="imagine", platform="test") == 3
    assert value(samples, jobs, state="completed", model="flux-schnell") == 2
    assert value(samples, jobs, state="delivered") == 2
    assert value(samples, jobs, state="failed") == 1
    assert value(samples, jobs, state="refused", model="flux-dev") == 1
    assert value(samples, "runpod_bot_jobs_active") == 0
    assert value(samples, "runpod_bot_open_holds") == 0

    charged = sum((r.cost for r in (*ok.results, *stormy.results)), Decimal(0))
    assert charged > 0
    got = value(
        samples, "runpod_bot_charged_usd_total", model="flux-schnell", workspace="test:guild1"
    )
    assert got == pytest.approx(float(charged))
    released = value(samples, "runpod_bot_released_usd_total", workspace="test:guild1")
    assert released == pytest.approx(float(failed_job.estimate))

    assert value(samples, "runpod_bot_runpod_rate_limited_total", route="run") == 3
    assert value(samples, "runpod_bot_runpod_retries_total", route="run") == 3
    assert value(samples, "runpod_bot_runpod_requests_total", route="run", status="429") == 3
    assert value(samples, "runpod_bot_runpod_requests_total", route="run", status="200") == 3
    assert runpod_fake.count("run") == 6

    assert value(samples, "runpod_bot_queue_wait_seconds_count") == 3
    assert value(samples, "runpod_bot_runpod_execution_seconds_count", model="flux-schnell") == 2
    assert value(samples, "runpod_bot_delivery_seconds_count", platform="test") == 2
    assert value(samples, "runpod_bot_worker_lease_held") == 1
    assert value(samples, "runpod_bot_workers_live") == 1


async def test_without_per_workspace_the_usd_counters_have_no_workspace_label(
    core: Core,
) -> None:
    _, ok = await submit(core, "a red fox --size 512x512")
    await ok.wait_for(lambda: ok.ended)
    await core.jobs.wait_idle(10)
    async with metrics_url(core) as url:
        samples = await scrape(url)
    charged = [dict(labels) for (name, labels) in samples if name == "runpod_bot_charged_usd_total"]
    assert charged == [{"model": "flux-schnell"}]


async def test_webhook_calls_are_counted_by_outcome(core: Core) -> None:
    async with metrics_url(core) as url, httpx.AsyncClient() as client:
        base = url.removesuffix("/metrics")
        ignored = await client.post(f"{base}/runpod/webhook/nojob/0/token", json={"id": "x"})
        malformed = await client.post(f"{base}/runpod/webhook/nojob/0/token", content=b"{")
        assert (ignored.status_code, malformed.status_code) == (200, 400)
        samples = await scrape(url)
    webhooks = "runpod_bot_webhooks_received_total"
    assert value(samples, webhooks, outcome="ignored") == 1
    assert value(samples, webhooks, outcome="malformed") == 1
    assert value(samples, webhooks, outcome="used") == 0


async def test_discord_429s_are_counted(tmp_path: Path, runpod_fake: FakeRunpod) -> None:
    async with FakeDiscord() as fake:
        with point_discord_py_at(fake):
            async with running_bot(discord_settings(tmp_path, runpod_fake, fake)) as bot:
                fake.rate_limit("POST /interactions/{interaction_id}/{interaction_token}/callback")
                sent = await fake.slash_command("models")
                assert (await sent.wait_for_message()).ephemeral  # answered after the retry
                async with metrics_url(bot.core) as url:
                    samples = await scrape(url)
    assert value(samples, "runpod_bot_platform_rate_limited_total", platform="discord") == 1
    errors = "runpod_bot_platform_api_errors_total"
    assert value(samples, errors, platform="discord", status="429") == 1
    assert value(samples, errors, platform="slack") == 0


async def test_slack_429s_are_counted(tmp_path: Path, runpod_fake: FakeRunpod) -> None:
    async with FakeSlack() as fake:
        populate(fake)
        async with running_slack(tmp_path, runpod_fake, fake) as bot:
            fake.rate_limit_next("chat.postMessage", times=2, retry_after=0)
            await bot.command("/imagine", "a cat --size 512x512")
            await bot.wait(bot.finished_cards)  # posted after slack_sdk's retries
            await bot.idle()
            async with metrics_url(bot.core) as url:
                samples = await scrape(url)
    assert value(samples, "runpod_bot_platform_rate_limited_total", platform="slack") == 2
    errors = "runpod_bot_platform_api_errors_total"
    assert value(samples, errors, platform="slack", status="429") == 2


async def test_a_declined_confirmation_is_counted_cancelled(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    settings = make_settings(tmp_path, runpod_fake, jobs={"confirm_above_usd": "0.01"})
    async with open_core(settings) as core, metrics_url(core) as url:
        submitted, _ = await submit(core, "a fox --model flux-dev")
        assert submitted.awaiting_confirmation
        said = await core.jobs.decline(submitted.job_id, HERE, user=ALICE.user)
        assert said == "Cancelled. Nothing was charged."
        samples = await scrape(url)
    jobs = "runpod_bot_jobs_total"
    assert value(samples, jobs, state="awaiting_confirmation", model="flux-dev") == 1
    assert value(samples, jobs, state="cancelled", model="flux-dev") == 1
    assert value(samples, jobs, state="held") == 0
    assert value(samples, "runpod_bot_released_usd_total") == 0  # nothing was ever held
