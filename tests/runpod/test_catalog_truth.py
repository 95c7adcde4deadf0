"""A catalog that stays true: models Runpod retired are named by `models --probe`, refused
with a clear message when `/run` answers 404, and hidden after repeated 404s until enabled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from bot.app import Core, open_core
from bot.cli.main import main
from bot.errors import InvalidRequest
from bot.policy import Where
from bot.requests import parse_text
from bot.runpod.availability import STALE_S
from tests.conftest import API_KEY, make_settings
from tests.discord.support import discord_settings, running_bot
from tests.fakes.discord import FakeDiscord, point_discord_py_at
from tests.fakes.runpod import FakeRunpod
from tests.identities import ALICE
from tests.jobs.support import spent, submit

SCHNELL = "black-forest-labs-flux-1-schnell"


@pytest.fixture
async def strict_core(tmp_path: Path, runpod_fake: FakeRunpod) -> AsyncIterator[Core]:
    settings = make_settings(tmp_path, runpod_fake, jobs={"hide_model_after_404s": 2})
    async with open_core(settings) as built:
        yield built


async def offered(core: Core) -> set[str]:
    return {m.id for m in await core.jobs.offered_models(Where("c1"), "image")}


async def test_run_answered_404_releases_the_hold_and_says_the_model_is_gone(
    strict_core: Core, runpod_fake: FakeRunpod
) -> None:
    core = strict_core
    runpod_fake.retire(SCHNELL)
    _, delivery = await submit(core, "a red fox --model flux-schnell --count 2")
    await delivery.wait_for(lambda: delivery.ended)
    (failure,) = delivery.failures
    assert "Flux Schnell is not available at Runpod" in failure.message
    assert "Nothing was charged" in failure.message
    assert await spent(core) == (Decimal(0), Decimal(0))
    assert "flux-schnell" in await offered(core), "one 404 does not hide a model yet"


async def test_repeated_404s_hide_the_model_until_an_operator_enables_it(
    strict_core: Core, runpod_fake: FakeRunpod
) -> None:
    core = strict_core
    runpod_fake.retire(SCHNELL)
    for _ in range(2):
        _, delivery = await submit(core, "a red fox --model flux-schnell")
        await delivery.wait_for(lambda d=delivery: d.ended)
    assert "flux-schnell" not in await offered(core)
    with pytest.raises(InvalidRequest, match="not available at Runpod"):
        await submit(core, "a red fox --model flux-schnell")
    assert runpod_fake.count("run") == 2, "a hidden model is refused before /run"
    request = parse_text("imagine", "a fox", core.catalog, default_model="flux-schnell")
    asked = await core.jobs.quote(request, ALICE, Where("c1"))
    assert (
        asked.refusal == "Flux Schnell is not available at Runpod (its endpoint no longer exists)."
    )

    code = await asyncio.to_thread(
        main, ["models", "--enable", "flux-schnell", "--config", str(_config(core))]
    )
    assert code == 0
    async with asyncio.timeout(STALE_S + 1):  # the CLI is another process: seen within STALE_S
        while True:
            if "flux-schnell" in await offered(core):
                break
            await asyncio.sleep(0.05)


async def test_an_accepted_run_starts_the_count_again(
    strict_core: Core, runpod_fake: FakeRunpod
) -> None:
    core = strict_core
    endpoint = runpod_fake.endpoints[SCHNELL]
    runpod_fake.retire(SCHNELL)
    _, delivery = await submit(core, "a red fox --model flux-schnell")
    await delivery.wait_for(lambda: delivery.ended)
    runpod_fake.endpoints[SCHNELL] = endpoint  # back (a blip at Runpod)
    _, delivery = await submit(core, "a red fox --model flux-schnell --size 256x256")
    await delivery.wait_for(lambda: delivery.results)
    runpod_fake.retire(SCHNELL)
    _, delivery = await submit(core, "a red fox --model flux-schnell")
    await delivery.wait_for(lambda: delivery.ended)
    assert "flux-schnell" in await offered(core), "404s were not in a row"


async def test_models_probe_names_the_endpoint_runpod_no_longer_has(
    tmp_path: Path, runpod_fake: FakeRunpod, capsys: pytest.CaptureFixture[str]
) -> None:
    runpod_fake.retire(SCHNELL)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[runpod]\napi_key = "{API_KEY}"\nbase_url = "{runpod_fake.base_url}"\n'
        f'[storage]\ndatabase = "{tmp_path / "bot.db"}"\n'
    )
    code = await asyncio.to_thread(main, ["models", "--probe", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 2
    gone = [line for line in out.splitlines() if line.startswith("gone:")]
    assert gone == [f"gone: flux-schnell (endpoint {SCHNELL} no longer exists at Runpod)"]
    assert runpod_fake.count("health") >= 40


def _config(core: Core) -> Path:
    """A config file pointing the CLI at the core's database."""
    path = core.settings.storage.database.parent / "cli.toml"
    path.write_text(f'[storage]\ndatabase = "{core.settings.storage.database}"\n')
    return path


async def test_discord_member_is_told_and_the_hidden_model_leaves_menus(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.retire("black-forest-labs-flux-1-dev")
    async with FakeDiscord() as fake, contextlib.AsyncExitStack() as stack:
        stack.enter_context(point_discord_py_at(fake))
        settings = discord_settings(tmp_path, runpod_fake, fake, jobs={"hide_model_after_404s": 1})
        await stack.enter_async_context(running_bot(settings))
        sent = await fake.slash_command("imagine", {"prompt": "a fox", "model": "flux-dev"})
        told = await sent.wait_for_message(lambda m: "not available" in m.content)
        typed = await fake.autocomplete("imagine", {"model": "flux"}, focused="model")
        listed = await (await fake.slash_command("models")).wait_for_message()
    assert told.ephemeral and "Flux Dev is not available at Runpod" in told.content
    assert "flux-dev" not in [c["value"] for c in await typed.choices()]
    text = "".join(embed["description"] for embed in listed.embeds)
    assert "`flux-schnell`" in text and "`flux-dev`" not in text
