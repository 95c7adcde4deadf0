"""The Slack adapter wired for wire tests: real core + FakeRunpod, real Bolt/slack_sdk + FakeSlack.

`running_bot` starts the adapter in HTTP mode (or Socket Mode) on a port the OS picks and
yields a `SlackBot` that sends correctly signed requests the way Slack does, and reads back what
a user would see in the fake workspace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from adapters.slack import SlackAdapter
from bot.app import Core, open_core
from bot.ledger.quota import Identity
from tests.conftest import make_settings
from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack, Message
from tests.fakes.slack_signing import (
    SignedResponse,
    SlackSigner,
    app_mention,
    block_actions,
    slash_command,
)

T = TypeVar("T")

SECRET = "test-signing-secret"
CHANNEL = "C0IMAGINE"
ALICE = "U0ALICE"
BOB = "U0BOB"
BOSS = "U0BOSS"  # a workspace admin (users.info is_admin)


def populate(fake: FakeSlack) -> None:
    fake.add_channel(CHANNEL, "imagine")
    fake.add_user(ALICE, "alice")
    fake.add_user(BOB, "bob")
    fake.add_user(BOSS, "boss", is_admin=True)


@dataclass
class SlackBot:
    fake: FakeSlack
    runpod: FakeRunpod
    core: Core
    adapter: SlackAdapter
    signer: SlackSigner

    @property
    def url(self) -> str:
        return self.adapter.events_url

    def member(self, user: str = ALICE) -> Identity:
        """The ledger's name for `user` in this workspace."""
        return Identity("slack", self.fake.team_id, user)

    async def spent(self, user: str = ALICE) -> Decimal:
        """What `user` has paid today (settled charges)."""
        return (await self.core.ledger.usage(self.member(user))).user[0].spent

    async def command(
        self, name: str, text: str = "", *, user: str = ALICE, channel: str = CHANNEL, **kw: Any
    ) -> SignedResponse:
        payload = slash_command(self.fake, name, text, user_id=user, channel_id=channel)
        return await self.signer.post_command(self.url, payload, **kw)

    async def mention(
        self,
        text: str,
        *,
        user: str = ALICE,
        channel: str = CHANNEL,
        files: Sequence[Mapping[str, Any]] = (),
        thread_ts: str | None = None,
    ) -> dict[str, Any]:
        """Post `@bot <text>` as `user`; returns the event_callback (its event's ts is the thread)."""
        event = app_mention(
            self.fake,
            f"<@{self.fake.bot_user_id}> {text}",
            user_id=user,
            channel_id=channel,
            files=files,
            thread_ts=thread_ts,
        )
        response = await self.signer.post_event(self.url, event)
        assert response.status == 200, response
        return event

    async def click(self, message: Message, action_id: str, *, user: str = ALICE) -> None:
        value = button_value(message, action_id)
        payload = block_actions(self.fake, message, action_id=action_id, value=value, user_id=user)
        response = await self.signer.post_interaction(self.url, payload)
        assert response.status == 200, response

    async def wait(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        return await self.fake.wait_for(predicate, timeout)

    async def idle(self) -> None:
        await asyncio.wait_for(self.adapter.idle(), 15)

    # --- what a user sees -------------------------------------------------------------------

    def cards(self, channel: str = CHANNEL) -> list[Message]:
        """Bot messages with job buttons or a job headline, in posting order."""
        return [
            m
            for m in self.fake.messages_in(channel)
            if m.user == self.fake.bot_user_id and m.ephemeral_to is None and m.blocks
        ]

    def public(self, channel: str = CHANNEL) -> list[Message]:
        return [
            m
            for m in self.fake.messages_in(channel)
            if m.user == self.fake.bot_user_id and m.ephemeral_to is None
        ]

    def ephemerals(self, user: str = ALICE) -> list[Message]:
        return [m for m in self.fake.messages if m.ephemeral_to == user]

    def finished_cards(self, channel: str = CHANNEL) -> list[Message]:
        return [m for m in self.cards(channel) if button_ids(m) & {"job_reroll", "job_show"}]


def block_texts(message: Message) -> list[str]:
    """Every mrkdwn text in the message's section and context blocks."""
    texts = []
    for block in message.blocks:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        elif block["type"] == "context":
            texts += [e["text"] for e in block["elements"]]
    return texts


def button_ids(message: Message) -> set[str]:
    return {
        e["action_id"]
        for block in message.blocks
        if block["type"] == "actions"
        for e in block["elements"]
    }


def button_value(message: Message, action_id: str) -> str:
    for block in message.blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"] == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button on {message.text!r}")


def slack_env(fake: FakeSlack) -> dict[str, str]:
    """The variables that connect a `python -m bot run` child to `fake` over Socket Mode."""
    return {
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_APP_TOKEN": fake.app_token,
        "BOT_SLACK__API_URL": fake.api_url,
    }


def slack_settings(fake: FakeSlack, *, socket: bool = False, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "bot_token": fake.bot_token,
        "api_url": fake.api_url,
        "host": "127.0.0.1",
        "port": 0,
    }
    if socket:
        values["app_token"] = fake.app_token
    else:
        values["signing_secret"] = SECRET
    return values | extra


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    runpod_fake: FakeRunpod,
    fake: FakeSlack,
    *,
    socket: bool = False,
    slack: Mapping[str, Any] | None = None,
    **sections: dict[str, Any],
) -> AsyncIterator[SlackBot]:
    """Core + adapter on `tmp_path`'s database; a second one on the same path is a restart."""
    settings = make_settings(
        tmp_path,
        runpod_fake,
        slack=slack_settings(fake, socket=socket, **(slack or {})),
        **sections,
    )
    async with open_core(settings) as core:
        adapter = SlackAdapter(core)
        await adapter.start()
        try:
            yield SlackBot(fake, runpod_fake, core, adapter, SlackSigner(SECRET))
        finally:
            await adapter.stop()
