"""Where a job's files are kept, and the inputs a job is given by URL, fetched to be kept.

Results live in the archive (when `storage.media_dir` is set), else in the spool until it is
trimmed; inputs in `bot.jobs.inputs`. The bot's signed links (`bot.jobs.links`) point at any of them, so a
rerun of an old job can give Runpod a link that still works.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.config import StorageSettings
from bot.delivery import MediaFile
from bot.errors import InvalidRequest
from bot.jobs.archive import Archive
from bot.jobs.inputs import Inputs
from bot.jobs.links import ResultLinks
from bot.jobs.spool import Spool
from bot.jobs.store import JobRecord
from bot.requests import Request
from bot.runpod.catalog import Model
from bot.runpod.outputs import Downloader, OutputError

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class KeptFiles:
    archive: Archive | None  # None: results are kept only until the spool is trimmed
    spool: Spool
    inputs: Inputs
    links: ResultLinks
    downloader: Downloader

    @classmethod
    def configured(
        cls, storage: StorageSettings, links_url: str | None, downloader: Downloader
    ) -> KeptFiles:
        """Where `[storage]` says to keep files, linked from the bot's public address."""
        return cls(
            archive=Archive(storage.media_dir) if storage.media_dir else None,
            spool=Spool(storage.spool_dir, max_bytes=int(storage.spool_max_mb * 1024 * 1024)),
            inputs=Inputs(
                storage.inputs_dir,
                keep_days=storage.inputs_keep_days,
                max_bytes=int(storage.inputs_max_mb * 1024 * 1024),
            ),
            links=ResultLinks(links_url, storage.spool_dir / ".link-key"),
            downloader=downloader,
        )

    async def files(self, job_id: str) -> tuple[MediaFile, ...] | None:
        """A past result's files: from the archive, else from the spool (not yet cleaned)."""
        for folder in (self.archive, self.spool):
            files = await asyncio.to_thread(folder.load, job_id) if folder else None
            if files:
                return files
        return None

    async def names(self, job_id: str) -> tuple[tuple[str, str], ...]:
        """(file name, content type) of a past result's kept files, as `files` finds them,
        without reading them: for listings of many results (the web gallery)."""
        for folder in (self.archive, self.spool):
            names = await asyncio.to_thread(folder.names, job_id) if folder else None
            if names:
                return names
        return ()

    def path(self, job_id: str, filename: str) -> Path | None:
        """Where one kept file of a job is (archive, else spool, else its kept inputs), for the
        bot's signed links."""
        for folder in (self.archive, self.spool, self.inputs):
            path = folder.path(job_id, filename) if folder else None
            if path is not None:
                return path
        return None

    def signed_links(self, job_id: str, files: tuple[MediaFile, ...]) -> dict[str, str]:
        """The bot's own signed link to each kept file, by name; empty without a public address."""
        links = {f.filename: self.links.url(job_id, f.filename) for f in files}
        return {name: link for name, link in links.items() if link}

    async def fetch_inputs(self, model: Model, request: Request) -> dict[str, MediaFile]:
        """The files a request gives Runpod by URL, fetched once (with the caps of results) to
        be kept with the job; a file that cannot be fetched is left to Runpod, as before."""
        kept: dict[str, MediaFile] = {}
        for url in _input_urls(model, request.input):
            if url in kept:
                continue
            name = f"input-{len(kept) + 1}"
            own = await self._own_copy(url, name)
            if own is not None:
                kept[url] = own
                continue
            try:
                kept[url] = await self.downloader.fetch(url, kind="input", name=name)
            except OutputError as exc:
                log.info("input of a %s job not kept: %s", model.id, exc.message)
        return kept

    async def keep_inputs(self, job_id: str, kept: dict[str, MediaFile]) -> None:
        if kept:
            await asyncio.to_thread(self.inputs.save, job_id, tuple(kept.values()))

    async def with_kept_inputs(self, job: JobRecord, model: Model, request: Request) -> Request:
        """A rerun's request whose inputs point at the copies this bot kept (the platform's
        links expire); refused with the reason when an input is gone and no copy can be served."""
        kept: dict[str, str] = job.request.get("kept_inputs") or {}
        links: dict[str, str] = {}
        for url in _input_urls(model, request.input):
            name = kept.get(url)
            stored = name is not None and self.inputs.path(job.id, name) is not None
            link = self.links.url(job.id, name) if stored and name else None
            if link is not None:
                links[url] = link
                continue
            try:
                await self.downloader.fetch(url, kind="input", name="input")
            except OutputError:
                raise InvalidRequest(
                    "This job can't be run again: the original attachment expired and "
                    + (
                        "this bot has no public address to serve its copy (http.public_url)."
                        if stored
                        else "no copy of it is kept any more."
                    )
                ) from None
        return _replace_urls(model, request, links) if links else request

    async def _own_copy(self, url: str, name: str) -> MediaFile | None:
        """A rerun's input, when `url` is this bot's own link: the kept copy, read from disk."""
        own = self.links.target(url)
        path = self.path(*own) if own else None
        if path is None:
            return None
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:  # removed by a trim meanwhile: fetched over HTTP instead
            log.info("kept input %s unreadable: %s", path, exc)
            return None
        return MediaFile(f"{name}{path.suffix}", "", data, source_url=url)


def _input_urls(model: Model, params: Mapping[str, Any]) -> list[str]:
    """The URLs of files an input gives Runpod, in parameter order."""
    urls: list[str] = []
    for name in model.media_inputs:
        value = params.get(name)
        values = value if isinstance(value, list) else [value]
        urls += [v for v in values if isinstance(v, str) and v]
    return urls


def _replace_urls(model: Model, request: Request, links: dict[str, str]) -> Request:
    """The request with each input URL in `links` replaced by its new address."""
    params = dict(request.input)
    for name in model.media_inputs:
        value = params.get(name)
        if isinstance(value, list):
            params[name] = [links.get(v, v) if isinstance(v, str) else v for v in value]
        elif isinstance(value, str):
            params[name] = links.get(value, value)
    media = tuple(links.get(url, url) for url in request.media)
    return replace(request, input=params, media=media)
