"""The fake Discord's world, what a user's actions look like on the wire, and its gateway.

Split out of `tests.fakes.discord` (the REST side and the test-facing API) to keep each readable:
here are the users, guilds and channels; the payloads built from them (READY, GUILD_CREATE,
INTERACTION_CREATE, including which synced command a user may run and how its options are
filled); and the websocket at `/gateway`. Every payload here starts from a documented example in `tests/fixtures/discord/` (copied from
Discord's API docs) and overrides only what must agree with the fake's own state, so the shapes the
bot parses are Discord's, not ones we invented. The fixtures are:

- `application_command_interaction.json`: "Example Interaction" under Slash Commands.
- `message_component_interaction.json`: the button-click interaction from Message Components, which
  also gives the message object shape.
- `guild_create.json`: "Example Guild" plus the GUILD_CREATE extra fields, "Example Role", "Example
  Guild Member" and "Example Guild Text Channel".
- `ready.json`: the documented READY fields (the docs give a table, not an example), with values
  taken from the docs' example user, unavailable guild and application.
- `application.json`: "Example Application Object".
- `interaction_callback_response.json`: the `with_response` answer of the interaction callback.

Gateway support: HELLO, IDENTIFY -> READY + GUILD_CREATE (respecting `shard`), HEARTBEAT -> ACK,
RESUME -> RESUMED (no replay of missed events), RECONNECT on demand. Plain JSON text frames only: a
client asking for `compress=zlib-stream` still gets uncompressed text, which discord.py accepts.
"""

from __future__ import annotations

import copy
import functools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "discord"
DISCORD_EPOCH_MS = 1_420_070_400_000
#: Discord's default per-file upload limit for bots (guilds without boosts, DMs).
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024

GUILD_TEXT, DM, GROUP_DM, PUBLIC_THREAD = 0, 1, 3, 11
STRING, INTEGER, BOOLEAN, USER_OPTION, NUMBER, ATTACHMENT_OPTION = 3, 4, 5, 6, 10, 11

GUILDS_INTENT = 1 << 0
GUILD_MEMBERS_INTENT = 1 << 1
GUILD_PRESENCES_INTENT = 1 << 8
GUILD_MESSAGES_INTENT = 1 << 9
DIRECT_MESSAGES_INTENT = 1 << 12
MESSAGE_CONTENT_INTENT = 1 << 15
#: Intents Discord refuses (close code 4014) unless switched on in the developer portal.
PRIVILEGED_INTENTS = GUILD_MEMBERS_INTENT | GUILD_PRESENCES_INTENT | MESSAGE_CONTENT_INTENT

ADMINISTRATOR = 1 << 3
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
USE_APPLICATION_COMMANDS = 1 << 31
ALL_PERMISSIONS = (1 << 51) - 1
DEFAULT_EVERYONE_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
)
#: What Discord puts in `app_permissions` for an interaction in a DM with the bot.
DM_APP_PERMISSIONS = ATTACH_FILES | EMBED_LINKS | MENTION_EVERYONE | USE_EXTERNAL_EMOJIS

_last_ms = 0


def snowflake() -> int:
    """A process-unique Discord id whose timestamp is about now (discord.py derives `created_at`).

    Each id takes the next millisecond, so ids never collide and sort in creation order.
    """
    global _last_ms
    _last_ms = max(int(time.time() * 1000) - DISCORD_EPOCH_MS, _last_ms + 1)
    return _last_ms << 22


def iso(moment: datetime) -> str:
    return moment.isoformat()


@functools.cache
def _fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def load_fixture(name: str) -> dict[str, Any]:
    """A fresh, mutable copy of one documented payload from `tests/fixtures/discord/`."""
    data: dict[str, Any] = json.loads(_fixture_text(name))
    return data


def _shaped(shape: dict[str, Any], **values: Any) -> dict[str, Any]:
    return {**copy.deepcopy(shape), **values}


@dataclass(eq=False)
class FakeUser:
    """A Discord account: a person invoking commands, or the bot itself (`bot=True`)."""

    username: str
    id: int = field(default_factory=snowflake)
    global_name: str | None = None
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        shape = load_fixture("message_component_interaction.json")["member"]["user"]
        return _shaped(
            shape,
            id=str(self.id),
            username=self.username,
            discriminator="0",
            global_name=self.global_name,
            avatar=None,
            public_flags=0,
            bot=self.bot,
        )


@dataclass(eq=False)
class FakeChannel:
    """A text channel (`nsfw=True` is Discord's age-restricted channel) or a DM with `recipient`."""

    name: str
    id: int = field(default_factory=snowflake)
    type: int = GUILD_TEXT
    nsfw: bool = False
    recipient: FakeUser | None = None
    parent_id: int | None = None  # a thread's channel


@dataclass(eq=False)
class FakeRole:
    name: str
    permissions: int = 0
    id: int = field(default_factory=snowflake)


@dataclass(eq=False)
class FakeMember:
    user: FakeUser
    roles: list[FakeRole] = field(default_factory=list)
    nick: str | None = None
    joined_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _default_channels() -> list[FakeChannel]:
    return [FakeChannel("general"), FakeChannel("after-dark", nsfw=True)]


@dataclass(eq=False)
class FakeGuild:
    """A server the bot is in. The owner is always a member; the fake adds the bot and test user.

    `upload_limit` is what Discord enforces per file (413 above it) and reports to the bot as the
    interaction's `attachment_size_limit`; the GUILD_CREATE `premium_tier` is chosen to match it
    where discord.py's `Guild.filesize_limit` table allows.
    """

    name: str = "Fake Guild"
    id: int = field(default_factory=snowflake)
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    owner: FakeUser = field(default_factory=lambda: FakeUser("guild-owner"))
    channels: list[FakeChannel] = field(default_factory=_default_channels)
    roles: list[FakeRole] = field(default_factory=list)
    members: list[FakeMember] = field(default_factory=list)
    everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS
    locale: str = "en-US"

    def __post_init__(self) -> None:
        self.add_member(self.owner)

    @property
    def text_channel(self) -> FakeChannel:
        """The first ordinary (not age-restricted) text channel: where commands run by default."""
        return next(c for c in self.channels if c.type == GUILD_TEXT and not c.nsfw)

    @property
    def nsfw_channel(self) -> FakeChannel:
        return next(c for c in self.channels if c.nsfw)

    def member(self, user: FakeUser) -> FakeMember | None:
        return next((m for m in self.members if m.user.id == user.id), None)

    def add_member(self, user: FakeUser, *roles: FakeRole) -> FakeMember:
        member = self.member(user)
        if member is None:
            member = FakeMember(user, list(roles))
            self.members.append(member)
        return member

    def permissions_for(self, user: FakeUser) -> int:
        """Guild-level permissions (channel overwrites are not modelled)."""
        member = self.member(user)
        if member is None:
            return 0
        perms = self.everyone_permissions
        for role in member.roles:
            perms |= role.permissions
        if user.id == self.owner.id or perms & ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def shard_id(self, shard_count: int) -> int:
        """Discord's shard formula: which gateway connection receives this guild's events."""
        return (self.id >> 22) % shard_count


def premium_tier_for(upload_limit: int) -> int:
    return 0 if upload_limit <= DEFAULT_UPLOAD_LIMIT else 2 if upload_limit <= 50 * 1024**2 else 3


def channel_payload(channel: FakeChannel, guild: FakeGuild | None) -> dict[str, Any]:
    if guild is None:
        recipients = [channel.recipient.payload()] if channel.recipient else []
        return {
            "id": str(channel.id),
            "type": channel.type,
            "last_message_id": None,
            "flags": 0,
            "recipients": recipients,
            **({"name": channel.name} if channel.type == GROUP_DM else {}),
        }
    if channel.parent_id is not None:
        return thread_payload(channel, guild, guild.owner)
    shape = load_fixture("guild_create.json")["channels"][0]
    return _shaped(
        shape,
        id=str(channel.id),
        guild_id=str(guild.id),
        name=channel.name,
        type=channel.type,
        position=guild.channels.index(channel),
        rate_limit_per_user=0,
        nsfw=channel.nsfw,
        topic=None,
        last_message_id=None,
        parent_id=None,
    )


def thread_payload(thread: FakeChannel, guild: FakeGuild, owner: FakeUser) -> dict[str, Any]:
    """A public thread (THREAD_CREATE, GET /channels/{id}), as Discord documents the object."""
    return {
        "id": str(thread.id),
        "guild_id": str(guild.id),
        "parent_id": str(thread.parent_id),
        "owner_id": str(owner.id),
        "name": thread.name,
        "type": thread.type,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "total_message_sent": 0,
        "flags": 0,
        "nsfw": thread.nsfw,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": iso(datetime.now(UTC)),
            "locked": False,
            "invitable": True,
        },
        "newly_created": True,
    }


def role_payload(role: FakeRole, *, position: int) -> dict[str, Any]:
    shape = load_fixture("guild_create.json")["roles"][0]
    return _shaped(
        shape,
        id=str(role.id),
        name=role.name,
        color=0,
        hoist=False,
        icon=None,
        position=position,
        permissions=str(role.permissions),
        flags=0,
    )


def member_payload(member: FakeMember, *, permissions: int | None = None) -> dict[str, Any]:
    """A guild member; `permissions` is added the way interactions carry it."""
    shape = load_fixture("guild_create.json")["members"][0]
    payload = _shaped(
        shape,
        user=member.user.payload(),
        nick=member.nick,
        roles=[str(r.id) for r in member.roles],
        joined_at=iso(member.joined_at),
        pending=False,
        flags=0,
    )
    if permissions is not None:
        payload["permissions"] = str(permissions)
    return payload


def guild_payload(guild: FakeGuild, *, members: list[FakeMember], gateway: bool) -> dict[str, Any]:
    """GUILD_CREATE data (`gateway=True`) or the REST guild object (no channels or members)."""
    payload = load_fixture("guild_create.json")
    everyone = FakeRole("@everyone", guild.everyone_permissions, id=guild.id)
    roles = [everyone, *guild.roles]
    payload.update(
        id=str(guild.id),
        name=guild.name,
        icon=None,
        banner=None,
        description=None,
        features=[],
        owner_id=str(guild.owner.id),
        verification_level=0,
        mfa_level=0,
        explicit_content_filter=0,
        vanity_url_code=None,
        premium_tier=premium_tier_for(guild.upload_limit),
        premium_subscription_count=0,
        preferred_locale=guild.locale,
        rules_channel_id=None,
        public_updates_channel_id=None,
        safety_alerts_channel_id=None,
        roles=[role_payload(r, position=i) for i, r in enumerate(roles)],
        joined_at=iso(guild.members[0].joined_at),
        member_count=len(guild.members),
        members=[member_payload(m) for m in members],
        channels=[channel_payload(c, guild) for c in guild.channels],
    )
    if not gateway:
        for key in ("joined_at", "large", "unavailable", "member_count", "voice_states", "members"):
            payload.pop(key)
        for key in ("channels", "threads", "presences", "stage_instances"):
            payload.pop(key)
        for key in ("guild_scheduled_events", "soundboard_sounds"):
            payload.pop(key)
    return payload


def interaction_payload(
    *,
    kind: int,
    interaction_id: int,
    token: str,
    application_id: int,
    data: dict[str, Any],
    user: FakeUser,
    bot: FakeUser,
    guild: FakeGuild | None,
    channel: FakeChannel,
    upload_limit: int,
    locale: str,
    message: dict[str, Any] | None = None,
    user_install: bool = False,
) -> dict[str, Any]:
    """INTERACTION_CREATE data: a command (2), component click (3) or autocomplete (4).

    `user_install`: authorised by the user's own install (`{"1": user id}`), not a server's.
    """
    fixture = (
        "message_component_interaction.json"
        if kind == 3
        else "application_command_interaction.json"
    )
    payload = load_fixture(fixture)
    payload.update(
        id=str(interaction_id),
        application_id=str(application_id),
        type=kind,
        data=data,
        token=token,
        version=1,
        locale=locale,
        entitlements=[],
        attachment_size_limit=upload_limit,
        channel_id=str(channel.id),
    )
    if guild is not None:
        member = guild.member(user)
        if member is None:
            raise ValueError(f"{user.username} is not a member of guild {guild.name}")
        permissions = guild.permissions_for(user)
        payload.update(
            guild_id=str(guild.id),
            guild_locale=guild.locale,
            guild={"id": str(guild.id), "locale": guild.locale, "features": []},
            member=member_payload(member, permissions=permissions),
            channel={**channel_payload(channel, guild), "permissions": str(permissions)},
            app_permissions=str(guild.permissions_for(bot)),
            authorizing_integration_owners={"0": str(guild.id)},
            context=0,
        )
    else:
        for key in ("guild_id", "guild_locale", "member"):
            payload.pop(key, None)
        payload.update(
            user=user.payload(),
            channel=channel_payload(channel, None),
            app_permissions=str(DM_APP_PERMISSIONS),
            authorizing_integration_owners={"0": "0"},
            context=2 if channel.type == GROUP_DM else 1,  # PRIVATE_CHANNEL or BOT_DM
        )
    if user_install:
        payload["authorizing_integration_owners"] = {"1": str(user.id)}
    if message is None:
        payload.pop("message", None)
    else:
        payload["message"] = message
    return payload


@dataclass(frozen=True)
class Upload:
    """A file a (fake) user attaches to a slash command's attachment option."""

    filename: str
    data: bytes = field(repr=False)
    content_type: str | None = None


def usable_command(
    commands: dict[int | None, list[dict[str, Any]]],
    name: str,
    guild: FakeGuild | None,
    user: FakeUser,
    *,
    user_install: bool = False,
    group_dm: bool = False,
) -> dict[str, Any] | None:
    """The synced slash command `user` would see in the picker here, if any.

    Guild commands shadow global ones; `contexts` (or legacy `dm_permission`) and
    `default_member_permissions` hide a command where Discord's client would hide it. Through
    a user install only global commands whose `integration_types` include 1 (USER_INSTALL)
    show; through a server's, those including 0 (GUILD_INSTALL, the default).
    """
    install = 1 if user_install else 0
    scopes = [guild.id, None] if guild is not None and not user_install else [None]
    for scope in scopes:
        for command in commands.get(scope, []):
            if command["name"] != name or command.get("type", 1) != 1:
                continue
            if install not in (command.get("integration_types") or [0]):
                continue
            contexts = command.get("contexts")
            if group_dm:  # PRIVATE_CHANNEL: only a user install reaches a group DM
                return command if user_install and contexts and 2 in contexts else None
            if guild is None:
                in_dm = 1 in contexts if contexts else command.get("dm_permission") is not False
                return command if in_dm else None
            # "0" means administrators only; permissions_for gives admins every bit.
            required, perms = command.get("default_member_permissions"), guild.permissions_for(user)
            lacking = (
                required is not None
                and perms != ALL_PERMISSIONS
                and (int(required) == 0 or ~perms & int(required))
            )
            return None if lacking or (contexts and 0 not in contexts) else command
    return None


def command_data(
    command: dict[str, Any],
    path: list[str],
    values: dict[str, Any],
    focused: str | None,
    guild: FakeGuild | None,
    upload: Callable[[Upload], dict[str, Any]],
) -> dict[str, Any]:
    """The `data` of an APPLICATION_COMMAND (or, with `focused`, AUTOCOMPLETE) interaction.

    Option types come from the synced definition, so a test passes plain values; `path` names
    subcommand groups/subcommands. `upload` stores an attachment and returns its payload.
    """
    data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": 1}
    if command.get("guild_id"):
        data["guild_id"] = command["guild_id"]
    definitions: list[dict[str, Any]] = command.get("options", [])
    options: list[dict[str, Any]] = []
    data["options"] = options
    for part in path:
        definition = _definition(definitions, part, command["name"])
        node: dict[str, Any] = {"name": part, "type": definition["type"], "options": []}
        options.append(node)
        options, definitions = node["options"], definition.get("options", [])
    resolved: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        kind = _definition(definitions, key, command["name"])["type"]
        if key == focused:  # what the user has typed so far, unconverted
            options.append({"name": key, "type": kind, "value": value, "focused": True})
        else:
            converted = _option_value(kind, value, resolved, guild, upload)
            options.append({"name": key, "type": kind, "value": converted})
    missing = [d["name"] for d in definitions if d.get("required") and d["name"] not in values]
    if focused is None and missing:
        raise ValueError(f"/{command['name']} needs options {missing}; Discord would not send it")
    if resolved:
        data["resolved"] = resolved
    return data


def _definition(definitions: list[dict[str, Any]], name: str, command: str) -> dict[str, Any]:
    for definition in definitions:
        if definition["name"] == name:
            return definition
    known = [d["name"] for d in definitions]
    raise ValueError(f"/{command} has no option or subcommand {name!r} (it has {known})")


def _option_value(
    kind: int,
    value: Any,
    resolved: dict[str, dict[str, Any]],
    guild: FakeGuild | None,
    upload: Callable[[Upload], dict[str, Any]],
) -> Any:
    scalars: dict[int, Callable[[Any], Any]] = {
        STRING: str,
        INTEGER: int,
        BOOLEAN: bool,
        NUMBER: float,
    }
    if kind in scalars:
        return scalars[kind](value)
    if kind == USER_OPTION and isinstance(value, FakeUser):
        resolved.setdefault("users", {})[str(value.id)] = value.payload()
        member = guild.member(value) if guild is not None else None
        if member is not None and guild is not None:
            partial = member_payload(member, permissions=guild.permissions_for(value))
            del partial["user"]
            resolved.setdefault("members", {})[str(value.id)] = partial
        return str(value.id)
    if kind == ATTACHMENT_OPTION and isinstance(value, Upload):
        attachment = upload(value)
        resolved.setdefault("attachments", {})[attachment["id"]] = attachment
        return attachment["id"]
    raise TypeError(f"the fake cannot fill an option of type {kind} with {value!r}")


@dataclass(eq=False)
class GatewaySession:
    """One IDENTIFYed connection (a shard). It outlives its socket so a client can RESUME it."""

    session_id: str
    shard: tuple[int, int]
    intents: int
    ws: web.WebSocketResponse | None
    ready: bool = False
    seq: int = 0

    @property
    def live(self) -> bool:
        return self.ready and self.ws is not None and not self.ws.closed

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        if self.ws is None:
            raise ConnectionError(f"session {self.session_id} has no open socket")
        self.seq += 1
        await _send(self.ws, {"op": 0, "t": event, "s": self.seq, "d": data})


async def _send(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
    frame.setdefault("s", None)
    frame.setdefault("t", None)
    await ws.send_str(json.dumps(frame))


class Gateway:
    """The websocket at `/gateway`. Records every IDENTIFY so tests can check intents and shards."""

    HELLO, HEARTBEAT, HEARTBEAT_ACK = 10, 1, 11
    IDENTIFY, RESUME, RECONNECT, INVALID_SESSION = 2, 6, 7, 9

    def __init__(self, fake: FakeDiscord) -> None:
        self._fake = fake
        self._sockets: set[web.WebSocketResponse] = set()
        self.sessions: list[GatewaySession] = []
        #: Every IDENTIFY payload (`d`) received, in order, including refused ones.
        self.identifies: list[dict[str, Any]] = []
        #: Every RESUME payload (`d`) received.
        self.resumes: list[dict[str, Any]] = []
        #: While true, connections are refused with 503 before the websocket upgrade (an outage).
        self.refusing = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.refusing:
            return web.Response(status=503, text="upstream connect error")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        session: GatewaySession | None = None
        try:
            hello = {"heartbeat_interval": self._fake.heartbeat_interval_ms}
            await _send(ws, {"op": self.HELLO, "d": hello})
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                op, data = frame.get("op"), frame.get("d")
                if op == self.HEARTBEAT:
                    await _send(ws, {"op": self.HEARTBEAT_ACK, "d": None})
                elif op == self.IDENTIFY:
                    session = await self._identify(ws, data)
                elif op == self.RESUME:
                    session = await self._resume(ws, data)
        except Exception as exc:  # a bug in the fake; surfaced by FakeDiscord.__aexit__
            self._fake.errors.append(exc)
            raise
        finally:
            self._sockets.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
            await self._fake._notify()
        return ws

    async def _identify(
        self, ws: web.WebSocketResponse, data: dict[str, Any]
    ) -> GatewaySession | None:
        self.identifies.append(data)
        fake = self._fake
        intents = int(data.get("intents", 0))
        if data.get("token") != fake.bot_token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        if intents & PRIVILEGED_INTENTS & ~fake.privileged_intents:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        shard_id, shard_count = data.get("shard") or (0, 1)
        session = GatewaySession(secrets.token_hex(16), (shard_id, shard_count), intents, ws)
        self.sessions.append(session)
        guilds = [g for g in fake.guilds if g.shard_id(shard_count) == shard_id]
        ready = load_fixture("ready.json")
        ready.update(
            user={**fake.bot_user.payload(), "verified": True, "mfa_enabled": False, "flags": 0},
            guilds=[{"id": str(g.id), "unavailable": True} for g in guilds],
            session_id=session.session_id,
            resume_gateway_url=fake.gateway_url,
            application={"id": str(fake.application_id), "flags": fake.application_flags},
        )
        if "shard" not in data:
            del ready["shard"]
        else:
            ready["shard"] = [shard_id, shard_count]
        await session.dispatch("READY", ready)
        if intents & GUILDS_INTENT:
            for guild in guilds:
                # Without the presences intent Discord only sends the bot's own member.
                members = guild.members if intents & GUILD_PRESENCES_INTENT else []
                members = members or [m for m in guild.members if m.user.id == fake.bot_user.id]
                payload = guild_payload(guild, members=members, gateway=True)
                await session.dispatch("GUILD_CREATE", payload)
        session.ready = True
        await fake._notify()
        return session

    async def _resume(
        self, ws: web.WebSocketResponse, data: dict[str, Any]
    ) -> GatewaySession | None:
        self.resumes.append(data)
        wanted = data.get("session_id")
        session = next((s for s in self.sessions if s.session_id == wanted), None)
        if session is None or data.get("token") != self._fake.bot_token:
            await _send(ws, {"op": self.INVALID_SESSION, "d": False})
            return None
        session.ws = ws
        await session.dispatch("RESUMED", {})
        await self._fake._notify()
        return session

    def live_session(self, guild: FakeGuild | None) -> GatewaySession | None:
        """The newest READY connection that receives this guild's events (DMs go to shard 0)."""
        for session in reversed(self.sessions):
            shard_id, count = session.shard
            wanted = 0 if guild is None else guild.shard_id(count)
            if session.live and shard_id == wanted:
                return session
        return None

    async def send_reconnect(self) -> None:
        """Ask every connected client to reconnect and RESUME (opcode 7), as Discord does."""
        for session in self.sessions:
            if session.live and session.ws is not None:
                await _send(session.ws, {"op": self.RECONNECT, "d": None})

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"fake Discord stopped")
