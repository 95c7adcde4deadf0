"""Handing a file someone shared in Slack to Runpod, which cannot log in to Slack.

A shared file's `url_private` answers only with the bot token (without it Slack serves its HTML
login page, with status 200). `files.sharedPublicURL` would publish the file for good and takes
a *user* token, which this bot does not have. So the adapter serves the file itself: for each
attached file it makes a link under `slack.public_url`, signed (HMAC keyed by the bot token)
and expiring after a day, which Runpod fetches; the adapter then fetches `url_private` with the
token and streams it through. Only files someone attached to a request are reachable, only
for a day, and nothing is stored. Without `slack.public_url` the user is told to paste a
public link instead.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
from aiohttp import web

from bot.errors import InvalidRequest

log = logging.getLogger(__name__)

ROUTE = "/slack/files/{expires}/{signature}/{name}"
LINK_TTL_S = 24 * 3600
CHUNK = 64 * 1024
NO_PUBLIC_URL = (
    "Runpod can't open files shared in Slack (they need a Slack login), and this bot has no"
    " public address to pass them on from. Paste a public link to the file instead, e.g."
    " `transcribe https://example.com/talk.mp3`, or ask an admin to set `slack.public_url`."
)
KINDS = {"transcribe": ("audio/", "video/"), "edit": ("image/",), "video": ("image/",)}


class FileLinks:
    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        token: str,
        public_url: str | None,
        max_bytes: int,
        ttl_s: float = LINK_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._token = token
        self._key = hashlib.sha256(b"slack file links\0" + token.encode()).digest()
        self.public_url = public_url
        self._max_bytes = max_bytes
        self._ttl = ttl_s
        self._clock = clock

    def links_for(self, command: str, files: list[Mapping[str, Any]]) -> list[str]:
        """Links for the attached files this command can use; InvalidRequest if none fit."""
        if not files or command not in KINDS:
            return []
        wanted = KINDS[command]
        usable = [f for f in files if str(f.get("mimetype", "")).startswith(wanted)]
        if not usable:
            kinds = " or ".join(k.rstrip("/") for k in wanted)
            raise InvalidRequest(f"/{command} needs an {kinds} file; the attached file is not one.")
        return [self.link(f) for f in usable]

    def link(self, file: Mapping[str, Any]) -> str:
        if not self.public_url:
            raise InvalidRequest(NO_PUBLIC_URL)
        source = str(file.get("url_private_download") or file.get("url_private") or "")
        if not source.startswith(("https://", "http://")):
            raise InvalidRequest("Slack sent this file without a download address; share it again.")
        expires = str(int(self._clock() + self._ttl))
        name = _safe_name(str(file.get("name") or "file"))
        path = ROUTE.format(expires=expires, signature=self._sign(expires, source), name=name)
        return f"{self.public_url.rstrip('/')}{path}?src={quote(source, safe='')}"

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler behind `ROUTE`: check the signature, stream the file from Slack."""
        expires, signature = request.match_info["expires"], request.match_info["signature"]
        source = request.query.get("src", "")
        if not hmac.compare_digest(self._sign(expires, source), signature):
            raise web.HTTPForbidden(text="bad signature")
        if not expires.isdigit() or int(expires) < self._clock():
            raise web.HTTPGone(text="link expired")
        try:
            return await self._relay(request, source)
        except httpx.HTTPError as exc:
            log.warning("shared file fetch failed: %s", type(exc).__name__)
            raise web.HTTPBadGateway(text="Slack could not be reached") from None

    async def _relay(self, request: web.Request, source: str) -> web.StreamResponse:
        headers = {"Authorization": f"Bearer {self._token}"}
        async with self._http.stream("GET", source, headers=headers) as upstream:
            content_type = upstream.headers.get("content-type", "application/octet-stream")
            if upstream.status_code != 200 or content_type.startswith("text/html"):
                log.warning("shared file fetch refused: %s %s", upstream.status_code, content_type)
                raise web.HTTPBadGateway(text="Slack did not hand over the file")
            size = int(upstream.headers.get("content-length") or 0)
            if size > self._max_bytes:
                raise web.HTTPRequestEntityTooLarge(max_size=self._max_bytes, actual_size=size)
            response = web.StreamResponse(headers={"Content-Type": content_type})
            if size:
                response.content_length = size
            await response.prepare(request)
            sent = 0
            async for chunk in upstream.aiter_bytes(CHUNK):
                sent += len(chunk)
                if sent > self._max_bytes:
                    log.warning("shared file larger than %d bytes; cut off", self._max_bytes)
                    break
                await response.write(chunk)
            await response.write_eof()
            return response

    def _sign(self, expires: str, source: str) -> str:
        message = f"{expires}\n{source}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "file"
    return cleaned[-80:]
