"""The web page for tests: the listener with the page mounted, and sign-in from a chat link."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from bot import web as web_page
from bot.app import Core
from bot.listener import Listener
from tests.discord.support import job_id_of, result_of
from tests.fakes.discord import FakeDiscord

PUBLIC_URL = "http://bot.test"  # what `web.public_url` says in tests; rewritten to the listener
LINK = re.compile(r"https?://\S+/web/signin/[\w-]+")


@contextlib.asynccontextmanager
async def running_page(core: Core) -> AsyncIterator[str]:
    """The listener serving /web on a free port; yields its base URL."""
    listener = Listener(core.jobs, host="127.0.0.1", port=0)
    listener.mounts[web_page.PREFIX] = web_page.web_app(core)
    await listener.start()
    try:
        yield f"http://127.0.0.1:{listener.port}"
    finally:
        await listener.stop()


def link_in(text: str, base: str) -> str:
    """The sign-in link a chat answer carries, pointed at the test listener."""
    found = LINK.search(text)
    if found is None:
        raise LookupError(f"no sign-in link in {text!r}")
    path = found.group(0).split("://", 1)[1].split("/", 1)[1]
    return f"{base}/{path}"


async def web_link(fake: FakeDiscord, base: str, **where: Any) -> str:
    """The link Discord's `/web` answers with (privately), pointed at the test listener."""
    sent = await fake.slash_command("web", **where)
    answer = await sent.wait_for_message()
    assert answer.ephemeral
    return link_in(answer.content, base)


async def imagine(fake: FakeDiscord, prompt: str, **where: Any) -> str:
    """A 512x512 `/imagine` in Discord, to its result; its job id."""
    sent = await fake.slash_command("imagine", {"prompt": prompt, "size": "512x512"}, **where)
    return job_id_of(await result_of(sent))


async def sign_in(client: httpx.AsyncClient, link: str) -> httpx.Response:
    """Open the link and press its Sign in button, as a member would."""
    form = await client.get(link)
    assert form.status_code == 200 and 'id="signin"' in form.text
    return await client.post(link)


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    """Ask again until `condition` holds: the bot handles a platform event on a task of its own,
    which sets no event a test can wait on."""
    async with asyncio.timeout(timeout):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.05)
