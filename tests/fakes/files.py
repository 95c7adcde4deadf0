"""FileHost: a real HTTP server on 127.0.0.1 serving fixed files, as a CDN serves an upload.

Jobs that take a file (a recording to transcribe) name it by URL; the bot reads a recording's
length from it before `/run`. Unknown paths answer 404.
"""

from __future__ import annotations

from typing import Self

from aiohttp import web


class FileHost:
    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.fetches: list[str] = []  # names, in the order they were asked for
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def add(self, name: str, data: bytes, content_type: str) -> str:
        """Serve `data` as `name`; returns its URL."""
        self.files[name] = (data, content_type)
        return f"{self.base_url}/{name}"

    async def _get(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.fetches.append(name)
        if name not in self.files:
            return web.Response(status=404, text="not found")
        data, content_type = self.files[name]
        return web.Response(body=data, content_type=content_type)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/{name}", self._get)
        self._runner = web.AppRunner(app, shutdown_timeout=0.25, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
