"""The real discord.py client against tests.fakes.discord, over loopback.

These pin down the Discord behaviours the adapter relies on (defer, edit, follow-ups with files,
persistent buttons across a restart, expired tokens, upload limits, rate limits, sharding, intents),
so the adapter's own tests can trust the fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.fakes.discord import (
    FakeDiscord,
    FakeGuild,
    Message,
    Upload,
    point_discord_py_at,
)
from tests.fakes.discord_gateway import DEFAULT_UPLOAD_LIMIT, PRIVILEGED_INTENTS, snowflake

with warnings.catch_warnings():
    # discord.py 2.7 imports the stdlib audioop module, deprecated since Python 3.11.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
    from discord import app_commands
    from discord.ext import commands

TIMEOUT = 5.0


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "purple").save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()


class TreeClient(discord.Client):
    """A bot with a command tree synced in setup_hook (globally, or to one guild)."""

    def __init__(
        self,
        *commands: app_commands.Command[Any, ..., Any],
        guild: FakeGuild | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("intents", discord.Intents.default())
        super().__init__(guild_ready_timeout=0.05, **options)
        self.tree = app_commands.CommandTree(self)
        self.scope = discord.Object(guild.id) if guild is not None else None
        for command in commands:
            self.tree.add_command(command, guild=self.scope)

    async def setup_hook(self) -> None:
        await self.tree.sync(guild=self.scope)


class PingBot(commands.Bot):
    """The same /ping as a commands.Bot, re-registering the persistent view at start."""

    def __init__(self, guild: FakeGuild) -> None:
        intents = discord.Intents.default()
        super().__init__(commands.when_mentioned, intents=intents, guild_ready_timeout=0.05)
        self.scope = discord.Object(guild.id)

    async def setup_hook(self) -> None:
        self.add_view(PingView())
        self.tree.add_command(ping_command(), guild=self.scope)
        await self.tree.sync(guild=self.scope)


class ShardedTreeClient(TreeClient, discord.AutoShardedClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s between IDENTIFYs (Discord's rate limit); the fake has none."""


@contextlib.asynccontextmanager
async def running(client: discord.Client, token: str) -> AsyncIterator[discord.Client]:
    """Run `client` until the block ends; fail fast if it cannot start."""
    async with client:
        task = asyncio.create_task(client.start(token))
        ready = asyncio.create_task(client.wait_until_ready())
        try:
            done, _ = await asyncio.wait(
                {task, ready}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                task.result()
            if ready not in done:
                raise TimeoutError("discord.py never became ready")
            yield client
        finally:
            ready.cancel()
            await client.close()
            await task


class PingView(discord.ui.View):
    """Persistent: fixed custom_id and no timeout, so a restarted bot can still handle it."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Again", style=discord.ButtonStyle.primary, custom_id="ping:again")
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        await interaction.response.edit_message(content="pong again", view=None)


def ping_command() -> app_commands.Command[Any, ..., Any]:
    @app_commands.command(description="Check that the bot answers")
    @app_commands.describe(text="What to echo")
    async def ping(interaction: discord.Interaction, text: str) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"pong: {text}")
        await interaction.followup.send(
            "here is a picture", file=discord.File(io.BytesIO(PNG), "ping.png"), view=PingView()
        )

    @ping.autocomplete("text")
    async def suggest(interaction: discord.Interaction, current: str) -> list[Any]:
        words = ("pong", "pang", "pung")
        return [app_commands.Choice(name=w, value=w) for w in words if w.startswith(current)]

    return ping


def outcome_command(
    name: str, body: Callable[[discord.Interaction, asyncio.Future[Any]], Any]
) -> tuple[app_commands.Command[Any, ..., Any], asyncio.Future[Any]]:
    """A command whose handler reports what happened (a value or the exception) to the test."""
    outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def callback(interaction: discord.Interaction) -> None:
        try:
            await body(interaction, outcome)
        except discord.HTTPException as exc:
            outcome.set_result(exc)

    return app_commands.Command(name=name, description=name, callback=callback), outcome


async def test_slash_command_followup_and_persistent_button_after_restart(
    fake: FakeDiscord,
) -> None:
    guild = fake.guild
    no_pings = discord.AllowedMentions.none()
    client = TreeClient(ping_command(), guild=guild, allowed_mentions=no_pings)
    async with running(client, fake.bot_token):
        suggestions = await fake.autocomplete("ping", {"text": "pa"}, focused="text")
        assert await suggestions.choices() == [{"name": "pang", "value": "pang"}]

        sent = await fake.slash_command("ping", {"text": "hello"})
        assert sent.payload["attachment_size_limit"] == DEFAULT_UPLOAD_LIMIT
        assert (await sent.response())["type"] == 5  # deferred: "Bot is thinking..."
        followup = await sent.wait_for_message(lambda m: bool(m.attachments))
        original = await sent.original()

    assert original.content == "pong: hello" and not original.loading
    assert [v.loading for v in fake.versions(original.id)] == [True, False]
    picture = followup.attachment("ping.png")
    assert (picture.data, picture.content_type) == (PNG, "image/png")
    assert followup.button("ping:again").label == "Again"
    assert followup.allowed_mentions is not None and followup.allowed_mentions["parse"] == []

    async with running(PingBot(guild), fake.bot_token):  # a fresh process, as after a deploy
        click = await fake.click_button(followup, "ping:again")
        assert (await click.response())["type"] == 7  # UPDATE_MESSAGE

    now = fake.messages[followup.id]
    assert (now.content, now.buttons, now.attachments) == ("pong again", [], followup.attachments)
    assert fake.versions(followup.id)[0].content == "here is a picture"
    assert click.payload["message"]["id"] == str(followup.id)


async def test_first_followup_after_defer_replaces_the_thinking_message(fake: FakeDiscord) -> None:
    async def defer_then_follow_up(interaction: discord.Interaction, outcome: Any) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        outcome.set_result(await interaction.followup.send("done", ephemeral=False, wait=True))

    command, outcome = outcome_command("think", defer_then_follow_up)
    async with running(TreeClient(command), fake.bot_token):
        sent = await fake.slash_command("think")
        followup = await asyncio.wait_for(outcome, TIMEOUT)

    assert followup.id == sent.original_message_id
    assert [m.content for m in sent.messages] == ["done"]
    assert sent.messages[0].ephemeral  # a message's ephemeral state never changes


async def test_expired_token_answers_50027_and_a_channel_message_still_works(
    fake: FakeDiscord,
) -> None:
    gate = asyncio.Event()

    async def slow_job(interaction: discord.Interaction, outcome: Any) -> None:
        await interaction.response.defer()
        await gate.wait()
        try:
            await interaction.edit_original_response(content="finally")
        except discord.HTTPException as exc:
            assert interaction.channel is not None
            await interaction.channel.send("finally (token expired)")  # type: ignore[union-attr]
            outcome.set_result(exc)

    command, outcome = outcome_command("slow", slow_job)
    async with running(TreeClient(command), fake.bot_token):
        sent = await fake.slash_command("slow")
        await sent.response()
        fake.expire_token(sent.token)
        gate.set()
        error = await asyncio.wait_for(outcome, TIMEOUT)
        fallback = await fake.wait_for_message(lambda m: m.interaction_id is None)

    assert (error.status, error.code, error.text) == (401, 50027, "Invalid Webhook Token")
    assert fallback.channel_id == fake.guild.text_channel.id


async def test_late_or_repeated_acknowledgement_is_refused(fake: FakeDiscord) -> None:
    gate = asyncio.Event()

    async def late_defer(interaction: discord.Interaction, outcome: Any) -> None:
        await gate.wait()
        await interaction.response.defer()

    command, outcome = outcome_command("late", late_defer)
    async with running(TreeClient(command), fake.bot_token):
        sent = await fake.slash_command("late")
        fake.advance_clock(3.5)  # past Discord's 3-second window
        gate.set()
        error = await asyncio.wait_for(outcome, TIMEOUT)

    assert isinstance(error, discord.NotFound) and error.code == 10062

    async with running(TreeClient(ping_command()), fake.bot_token):
        sent = await fake.slash_command("ping", {"text": "x"})
        await sent.wait_for_message(lambda m: bool(m.attachments))
    url = f"{fake.api_base}/interactions/{sent.id}/{sent.token}/callback"
    async with aiohttp.ClientSession() as http, http.post(url, json={"type": 5}) as response:
        body = await response.json()
    assert response.headers["Content-Type"] == "application/json"  # exactly, or discord.py
    assert (response.status, body["code"]) == (400, 40060)  # would not parse the error


async def test_attachment_option_reaches_the_bot_as_a_downloadable_file(fake: FakeDiscord) -> None:
    @app_commands.command(description="Describe an image")
    async def describe(interaction: discord.Interaction, image: discord.Attachment) -> None:
        data = await image.read()
        summary = f"{image.filename} {image.content_type} {len(data)} {data == PNG}"
        await interaction.response.send_message(summary)

    async with running(TreeClient(describe), fake.bot_token):
        sent = await fake.slash_command("describe", attachments={"image": Upload("cat.png", PNG)})
        reply = await sent.original()

    assert reply.content == f"cat.png image/png {len(PNG)} True"


async def test_discord_validation_errors_reach_discord_py(fake: FakeDiscord) -> None:
    async with running(TreeClient(), fake.bot_token) as client:
        channel = client.get_channel(fake.guild.text_channel.id)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        with pytest.raises(discord.HTTPException) as empty:
            await channel.send()
        with pytest.raises(discord.HTTPException) as long_embed:
            await channel.send(embed=discord.Embed(description="x" * 4097))

    assert (too_long.value.status, too_long.value.code) == (400, 50035)
    assert "2000 or fewer" in too_long.value.text
    assert (empty.value.status, empty.value.code) == (400, 50006)
    assert "In embeds" in long_embed.value.text
    assert fake.messages == {}


@pytest.mark.parametrize("limit", [DEFAULT_UPLOAD_LIMIT, 1024])
async def test_upload_over_the_guild_limit_is_refused_with_413(limit: int) -> None:
    async def upload(interaction: discord.Interaction, outcome: Any) -> None:
        assert interaction.filesize_limit == limit  # from attachment_size_limit
        await interaction.response.defer()
        await interaction.followup.send(file=discord.File(io.BytesIO(b"x" * limit), "ok.bin"))
        await interaction.followup.send(file=discord.File(io.BytesIO(b"x" * (limit + 1)), "no.bin"))

    command, outcome = outcome_command("upload", upload)
    async with FakeDiscord(guilds=[FakeGuild(upload_limit=limit)]) as fake:
        with point_discord_py_at(fake):
            async with running(TreeClient(command), fake.bot_token):
                await fake.slash_command("upload")
                error = await asyncio.wait_for(outcome, TIMEOUT)

    assert isinstance(error, discord.HTTPException)
    assert (error.status, error.code) == (413, 40005)
    assert [a.size for m in fake.messages.values() for a in m.attachments] == [limit]


async def test_rate_limited_calls_are_retried_by_discord_py(fake: FakeDiscord) -> None:
    fake.rate_limit("POST /webhooks/{application_id}/{webhook_token}", retry_after=0.05)
    fake.rate_limit("POST /channels/{channel_id}/messages", retry_after=0.05)
    async with running(TreeClient(ping_command()), fake.bot_token) as client:
        sent = await fake.slash_command("ping", {"text": "busy"})
        await sent.wait_for_message(lambda m: bool(m.attachments))
        channel = client.get_channel(fake.guild.text_channel.id)
        assert isinstance(channel, discord.TextChannel)
        posted = await channel.send("hello")

    def statuses(route: str) -> list[int]:
        return [r.status for r in fake.requests if r.route == route]

    assert statuses("POST /webhooks/{application_id}/{webhook_token}") == [429, 200]
    assert statuses("POST /channels/{channel_id}/messages") == [429, 200]
    assert fake.messages[posted.id].content == "hello"


async def test_wrong_token_fails_login(fake: FakeDiscord) -> None:
    async with discord.Client(intents=discord.Intents.default()) as client:
        with pytest.raises(discord.LoginFailure) as failure:
            await client.login("not-the-token")
    cause = failure.value.__cause__
    assert isinstance(cause, discord.HTTPException)
    assert (cause.status, cause.code, cause.text) == (401, 0, "401: Unauthorized")


async def test_identify_asks_for_no_privileged_intents(fake: FakeDiscord) -> None:
    async with running(TreeClient(), fake.bot_token):
        pass
    assert fake.gateway.identifies[-1]["intents"] & PRIVILEGED_INTENTS == 0

    greedy = TreeClient(intents=discord.Intents.all())
    async with greedy:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await asyncio.wait_for(greedy.start(fake.bot_token), TIMEOUT)


async def test_sharded_client_gets_each_guild_on_its_shard_and_dms_on_shard_zero() -> None:
    now_ms = snowflake() >> 22  # consecutive timestamps land on different shards of two
    guilds = [FakeGuild(name=f"g{n}", id=(now_ms + n) << 22) for n in (0, 1)]

    @app_commands.command(description="Where am I?")
    async def where(interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"guild={interaction.guild_id}")

    async with FakeDiscord(guilds=guilds) as fake, contextlib.AsyncExitStack() as stack:
        stack.enter_context(point_discord_py_at(fake))
        client = ShardedTreeClient(where, shard_count=2)
        await stack.enter_async_context(running(client, fake.bot_token))
        assert sorted(client.shards) == [0, 1]
        assert {g.id: g.shard_id for g in client.guilds} == {g.id: g.shard_id(2) for g in guilds}
        answers = []
        for guild_id in (guilds[0].id, guilds[1].id, None):
            sent = await fake.slash_command("where", guild_id=guild_id, dm=guild_id is None)
            answers.append((await sent.original()).content)

    assert [d["shard"] for d in fake.gateway.identifies] == [[0, 2], [1, 2]]
    assert answers == [f"guild={guilds[0].id}", f"guild={guilds[1].id}", "guild=None"]


async def test_reconnect_resumes_the_session(fake: FakeDiscord) -> None:
    async with running(TreeClient(ping_command()), fake.bot_token) as client:
        resumed = asyncio.ensure_future(client.wait_for("resumed"))
        await fake.gateway.send_reconnect()
        await asyncio.wait_for(resumed, TIMEOUT)
        sent = await fake.slash_command("ping", {"text": "still here"})
        await sent.wait_for_message(lambda m: bool(m.attachments))
        original: Message = await sent.original()

    assert original.content == "pong: still here"
    assert len(fake.gateway.identifies) == 1 and len(fake.gateway.resumes) == 1


async def test_a_repeated_nonce_returns_the_first_message_instead_of_a_second(
    fake: FakeDiscord,
) -> None:
    async with running(TreeClient(), fake.bot_token) as client:
        channel = client.get_partial_messageable(fake.guild.text_channel.id)
        first = await channel.send("result", nonce="job123")
        again = await channel.send("result", nonce="job123")
        other = await channel.send("result", nonce="job124")
        fake.advance_clock(fake.nonce_window + 1)
        late = await channel.send("result", nonce="job123")

    assert again.id == first.id and other.id != first.id and late.id != first.id
    assert [m.nonce for m in fake.messages.values()] == ["job123", "job124", "job123"]


async def test_create_dm_returns_one_dm_channel_per_user_and_stores_its_messages(
    fake: FakeDiscord,
) -> None:
    url, auth = f"{fake.api_base}/users/@me/channels", {"Authorization": f"Bot {fake.bot_token}"}
    async with aiohttp.ClientSession(headers=auth) as http:
        opened = []
        for _ in range(2):
            async with http.post(url, json={"recipient_id": str(fake.user.id)}) as response:
                opened.append((response.status, await response.json()))
        async with http.post(url, json={"recipient_id": "1"}) as response:
            unknown = (response.status, (await response.json())["code"])
    async with running(TreeClient(), fake.bot_token) as client:
        dm = await client.create_dm(discord.Object(fake.user.id))
        sent = await dm.send("hello", file=discord.File(io.BytesIO(PNG), "dm.png"))

    (status, first), (_, second) = opened
    assert status == 200 and first == second and unknown == (400, 50033)
    assert first["type"] == 1 and [u["id"] for u in first["recipients"]] == [str(fake.user.id)]
    assert int(first["id"]) == dm.id == fake.dm_channel(fake.user).id
    stored = fake.messages[sent.id]
    assert stored.channel_id == dm.id and stored.guild_id is None
    assert stored.content == "hello" and stored.attachment("dm.png").data == PNG


class Listener(TreeClient):
    """Puts every message it is sent on `heard`, in the order the gateway sent them."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.heard: asyncio.Queue[discord.Message] = asyncio.Queue()

    async def on_message(self, message: discord.Message) -> None:
        self.heard.put_nowait(message)


@pytest.mark.parametrize("dm_messages", [True, False])
async def test_dm_messages_reach_a_bot_with_the_dm_intent_and_their_text(
    fake: FakeDiscord, dm_messages: bool
) -> None:
    """Without Message Content a DM's text still arrives (Discord documents "content in DMs
    with the app" as an exception); without the DM intent the DM is not sent at all. The
    mention in the guild message that follows is the marker that all sent so far has come."""
    wanted = discord.Intents(guilds=True, guild_messages=True, dm_messages=dm_messages)
    async with running(Listener(intents=wanted), fake.bot_token) as client:
        assert isinstance(client, Listener)
        dm = fake.dm_channel(fake.user)
        await fake.user_message("hello bot", channel_id=dm.id)
        await fake.user_message("hello all", channel_id=fake.group_dm().id)
        await fake.user_message("marker", mention_bot=True)
        heard = [await asyncio.wait_for(client.heard.get(), TIMEOUT)]
        while heard[-1].guild is None:
            heard.append(await asyncio.wait_for(client.heard.get(), TIMEOUT))

    shown = [(m.channel.id, m.content) for m in heard[:-1]]
    assert shown == ([(dm.id, "hello bot")] if dm_messages else [])
    assert heard[-1].content.endswith("marker")
