"""`python -m bot check --online`: one authenticated call to each service the bot uses.

Runpod: `GET /{endpoint}/health` of the default image model (cheap, needs the key). Discord:
`GET /users/@me` with the bot token. Slack: `auth.test` with the bot token (its
`x-oauth-scopes` header lists the token's scopes, checked against the manifest's), and with an
app token, `apps.connections.open` (Socket Mode). Every base URL comes from the settings. Each
service gets one line: `ok`, or why not. Tokens are never printed.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from bot.config import Settings
from bot.runpod.catalog import Catalog
from bot.runpod.client import (
    ConnectionFailed,
    NotFound,
    RunpodClient,
    RunpodError,
    RunpodTimeout,
    Unauthorized,
)

TIMEOUT_S = 10.0
# The bot scopes docs/slack.md's manifest asks for (chat:write.public is optional).
SLACK_SCOPES = frozenset(
    {
        "app_mentions:read",
        "chat:write",
        "commands",
        "files:read",
        "files:write",
        "users:read",
        "usergroups:read",
    }
)


@dataclass(frozen=True)
class Result:
    service: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.service}: {'ok' if self.ok else 'FAILED'}" + (
            f" ({self.detail})" if self.detail else ""
        )


async def check_all(settings: Settings, catalog: Catalog) -> list[Result]:
    async with httpx.AsyncClient(timeout=TIMEOUT_S, trust_env=False) as http:
        results = [await runpod(http, settings, catalog)]
        results.append(await discord(http, settings))
        results.append(await slack(http, settings))
    return results


async def runpod(http: httpx.AsyncClient, settings: Settings, catalog: Catalog) -> Result:
    key = settings.runpod.api_key
    if key is None:
        return Result("runpod", False, "RUNPOD_API_KEY is not set")
    model = catalog.get(settings.jobs.default_models.get("imagine", "flux-schnell"))
    client = RunpodClient(http, base_url=settings.runpod.base_url, api_key=key, max_retries=0)
    try:
        await client.ping(model.endpoint, timeout_s=TIMEOUT_S)
    except Unauthorized as exc:
        return Result("runpod", False, f"bad API key: Runpod refused it ({exc.status})")
    except NotFound:
        return Result("runpod", False, f"endpoint {model.endpoint} ({model.id}) not found")
    except (ConnectionFailed, RunpodTimeout) as exc:
        return Result("runpod", False, f"unreachable at {settings.runpod.base_url}: {exc.message}")
    except RunpodError as exc:
        return Result("runpod", False, exc.message)
    return Result("runpod", True, f"API key accepted by {model.endpoint}/health")


async def discord(http: httpx.AsyncClient, settings: Settings) -> Result:
    token = settings.discord.token
    if token is None:
        return Result("discord", True, "not configured")
    url = settings.discord.api_base.rstrip("/") + "/users/@me"
    try:
        response = await http.get(url, headers={"Authorization": f"Bot {_value(token)}"})
    except httpx.HTTPError as exc:
        return Result("discord", False, f"unreachable at {url}: {type(exc).__name__}")
    if response.status_code == 401:
        return Result("discord", False, "bad token: Discord answered 401 Unauthorized")
    if response.status_code != 200:
        return Result("discord", False, f"Discord answered HTTP {response.status_code}")
    me = _json(response)
    return Result("discord", True, f"logged in as {me.get('username', '?')} ({me.get('id', '?')})")


async def slack(http: httpx.AsyncClient, settings: Settings) -> Result:
    conf = settings.slack
    if conf.bot_token is None:
        return Result("slack", True, "not configured")
    base = conf.api_url.rstrip("/") + "/"
    try:
        response = await http.post(
            base + "auth.test", headers={"Authorization": f"Bearer {_value(conf.bot_token)}"}
        )
        body = _json(response)
        if response.status_code != 200 or not body:
            return Result("slack", False, f"auth.test answered HTTP {response.status_code}")
        if not body.get("ok"):
            return Result("slack", False, f"bad bot token: auth.test said {body.get('error')}")
        granted = {s.strip() for s in response.headers.get("x-oauth-scopes", "").split(",")}
        missing = sorted(SLACK_SCOPES - granted)
        if missing:
            return Result(
                "slack", False, f"missing scope: {', '.join(missing)}; add it and reinstall the app"
            )
        detail = f"bot {body.get('user', '?')} in {body.get('team', '?')}"
        if conf.app_token is not None:
            opened = await http.post(
                base + "apps.connections.open",
                headers={"Authorization": f"Bearer {_value(conf.app_token)}"},
            )
            answer = _json(opened)
            if not answer.get("ok"):
                why = answer.get("error") or f"HTTP {opened.status_code}"
                return Result("slack", False, f"bad app token: apps.connections.open said {why}")
            detail += "; app token accepted (Socket Mode)"
    except httpx.HTTPError as exc:
        return Result("slack", False, f"unreachable at {base}: {type(exc).__name__}")
    return Result("slack", True, detail)


def _value(secret: SecretStr) -> str:
    return secret.get_secret_value()


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
