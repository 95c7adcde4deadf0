"""Turning a finished Runpod job's output into files and text a chat can show.

Output URLs expire after 7 days, so media is downloaded as soon as a job completes: streamed,
capped in size, bounded in time and checked to be the kind of file the model makes. Only from
public addresses (see `bot.runpod.addresses`), every redirect hop checked the same way. Transcripts
become a `.txt` (and an `.srt` when the model returned timed segments); text models' replies lose
their `<think>` blocks.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from PIL import Image, UnidentifiedImageError

from bot.commands import COMMANDS, command_of_kind
from bot.delivery import MediaFile
from bot.errors import BotError
from bot.runpod.addresses import (
    AddressRefused,
    CheckedAddresses,
    IPAddress,
    Unresolved,
    is_public,
)
from bot.runpod.catalog import Model

if TYPE_CHECKING:  # bot.jobs imports this module
    from bot.jobs.store import JobRecord

log = logging.getLogger(__name__)

# Model kind -> the MIME type prefix its result files must have (kinds whose result is a file).
MEDIA_KINDS = {k: c.media_type for c in COMMANDS.values() for k in c.kinds if c.media_type}
URL_FIELDS = ("image_url", "video_url", "audio_url", "result", "url", "images", "image_urls")
EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/webm": "webm",
    "video/quicktime": "mov",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
}
MAX_REDIRECTS = 5
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)


class OutputError(BotError):
    """The job finished but its result could not be fetched or read."""


@dataclass(frozen=True)
class Extracted:
    urls: tuple[str, ...] = ()
    text: str | None = None
    segments: tuple[Mapping[str, Any], ...] = ()


def result_text(model: Model, job: JobRecord) -> str | None:
    """The text a finished text or transcription job gave (its copies joined), else None."""
    if command_of_kind(model.kind).output != "text":
        return None
    texts = []
    for copy in job.copies:
        if copy.status == "COMPLETED":
            try:
                found = extract(model, copy.output).text
            except OutputError:
                continue
            if found:
                texts.append(found)
    return "\n\n".join(texts) or None


def extract(model: Model, output: Any) -> Extracted:
    """Find the result in an output shaped as the model's page documents (and known variants)."""
    body = (
        output[0] if isinstance(output, list) and output and isinstance(output[0], dict) else output
    )
    if model.kind == "text":
        return Extracted(text=strip_think(text_of(output)))
    if not isinstance(body, Mapping):
        if isinstance(body, str) and body.startswith(("http://", "https://")):
            return Extracted(urls=(body,))
        raise OutputError(f"{model.name} returned an output the bot cannot read")
    if model.kind == "transcription":
        text = body.get(model.output) or body.get("text") or body.get("transcription")
        if not isinstance(text, str):
            raise OutputError(f"{model.name} returned no transcription")
        segments = body.get("segments") or ()
        return Extracted(
            text=text.strip(), segments=tuple(s for s in segments if isinstance(s, Mapping))
        )
    for name in (model.output, *URL_FIELDS):
        value = body.get(name)
        urls = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        urls = [u for u in urls if isinstance(u, str) and u.startswith(("http://", "https://"))]
        if urls:
            return Extracted(urls=tuple(urls))
    raise OutputError(f"{model.name} finished but returned no file")


def text_of(output: Any) -> str:
    """The reply of a text model: native `[{"choices": [{"tokens": [...]}]}]` or OpenAI shape."""
    body = output[0] if isinstance(output, list) and output else output
    if isinstance(body, str):
        return body
    if not isinstance(body, Mapping):
        return ""
    parts: list[str] = []
    for choice in body.get("choices") or []:
        if not isinstance(choice, Mapping):
            continue
        if isinstance(choice.get("tokens"), list):
            parts.extend(str(t) for t in choice["tokens"])
        elif isinstance(choice.get("text"), str):
            parts.append(choice["text"])
        elif isinstance(choice.get("message"), Mapping):
            parts.append(str(choice["message"].get("content") or ""))
        elif isinstance(choice.get("delta"), Mapping):
            parts.append(str(choice["delta"].get("content") or ""))
    if not parts and isinstance(body.get("text"), str):
        parts.append(body["text"])
    return "".join(parts)


def strip_think(text: str) -> str:
    return _THINK.sub("", text).strip()


def srt(segments: tuple[Mapping[str, Any], ...]) -> str:
    """SubRip subtitles from `[{"start": s, "end": s, "text": ...}]`."""
    blocks = []
    for number, segment in enumerate(segments, start=1):
        start, end = _stamp(segment.get("start")), _stamp(segment.get("end"))
        blocks.append(f"{number}\n{start} --> {end}\n{str(segment.get('text', '')).strip()}\n")
    return "\n".join(blocks)


def _stamp(seconds: Any) -> str:
    try:
        total_ms = max(0, round(float(seconds) * 1000))
    except (TypeError, ValueError):
        total_ms = 0
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02}:{minutes:02}:{secs:02},{ms:03}"


def transcript_files(
    job_id: str, text: str, segments: tuple[Mapping[str, Any], ...]
) -> tuple[MediaFile, ...]:
    files = [MediaFile(f"transcript-{job_id}.txt", "text/plain; charset=utf-8", text.encode())]
    if segments:
        files.append(
            MediaFile(f"transcript-{job_id}.srt", "application/x-subrip", srt(segments).encode())
        )
    return tuple(files)


class Downloader:
    """Fetches result media with a size cap, a time limit, retries and a content-type check.

    Redirects are followed here, not by httpx, so that each hop's host is checked before
    anything is sent to it (unless `allow_private_urls`). `is_public` decides which addresses
    pass; tests stand a loopback address in for a public host with it.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        max_bytes: int,
        timeout_s: float,
        allow_private_urls: bool = False,
        is_public: Callable[[IPAddress], bool] = is_public,
        attempts: int = 3,
        backoff_s: float = 0.5,
        max_concurrent: int = 16,
    ) -> None:
        self._http = http
        self._allow_private_urls = allow_private_urls
        self._addresses = CheckedAddresses(is_public)
        # Results are held in memory until delivered: bound how many arrive at once.
        self._slots = asyncio.Semaphore(max_concurrent)
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._backoff_s = backoff_s

    async def fetch(self, url: str, *, kind: str, name: str) -> MediaFile:
        expected = MEDIA_KINDS.get(kind, "")
        target = _http_url(url)
        if target is None:
            raise OutputError("the result's address is not a valid http(s) URL")
        for attempt in range(self._attempts):
            try:
                async with self._slots, asyncio.timeout(self._timeout_s):
                    data, content_type = await self._get(target)
                break
            except AddressRefused as exc:
                log.warning("download of %s refused: %s", name, exc.message)
                raise OutputError(f"the result was not downloaded: {exc.message}") from exc
            except (httpx.TransportError, TimeoutError, _Transient, Unresolved) as exc:
                if attempt + 1 == self._attempts:
                    raise OutputError(
                        f"the result could not be downloaded ({_reason(exc)})"
                    ) from exc
                log.warning("download of %s failed (%s); retrying", name, _reason(exc))
                await asyncio.sleep(self._backoff_s * 2**attempt)
        content_type = _sniff(data) or content_type
        if expected and not content_type.startswith(expected):
            raise OutputError(
                f"the result is {content_type or 'an unknown file'}, not {expected.rstrip('/')}"
            )
        width, height = _dimensions(data) if content_type.startswith("image/") else (None, None)
        extension = EXTENSIONS.get(content_type, "bin")
        return MediaFile(f"{name}.{extension}", content_type, data, width, height, source_url=url)

    async def _get(self, target: httpx.URL) -> tuple[bytes, str]:
        for _ in range(MAX_REDIRECTS + 1):
            async with self._hop(target) as response:
                if not response.has_redirect_location:
                    return await self._read(response)
                target = _next_hop(target, response.headers["Location"])
        raise OutputError(f"the result's address redirected more than {MAX_REDIRECTS} times")

    @asynccontextmanager
    async def _hop(self, url: httpx.URL) -> AsyncIterator[httpx.Response]:
        """GET one URL without following redirects, over a connection to a checked address."""
        if self._allow_private_urls:
            async with self._http.stream(
                "GET", url, timeout=self._timeout_s, follow_redirects=False
            ) as response:
                yield response
            return
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        address = await self._addresses.address(host, port)
        # The request names the checked address; Host and TLS (SNI, certificate) keep the
        # name. The pool keeps the connection for the next result from the same host: its
        # key is the address and the name (`sni_hostname`), so a connection made for one
        # name never carries a request for another name on the same address.
        pinned = url.copy_with(host=str(address))
        headers = {"Host": url.netloc.decode("ascii")}
        async with self._http.stream(
            "GET",
            pinned,
            headers=headers,
            extensions={"sni_hostname": host},
            timeout=self._timeout_s,
            follow_redirects=False,
        ) as response:
            yield response

    async def _read(self, response: httpx.Response) -> tuple[bytes, str]:
        if response.status_code >= 500 or response.status_code == 429:
            raise _Transient(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise OutputError(
                f"the result could not be downloaded (HTTP {response.status_code}; it may have expired)"
            )
        declared = int(response.headers.get("Content-Length") or 0)
        if declared > self._max_bytes:
            raise OutputError(
                f"the result is {_mb(declared)}, over the {_mb(self._max_bytes)} limit"
            )
        buffer = bytearray()
        async for chunk in response.aiter_bytes():
            buffer.extend(chunk)
            if len(buffer) > self._max_bytes:
                raise OutputError(f"the result is over the {_mb(self._max_bytes)} limit")
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        return bytes(buffer), content_type


class _Transient(Exception):
    pass


def _next_hop(url: httpx.URL, location: str) -> httpx.URL:
    try:
        target = url.join(location)
    except httpx.InvalidURL as exc:
        raise OutputError("the result's address redirected to an invalid URL") from exc
    if target.scheme not in ("http", "https") or not target.host:
        raise OutputError("the result's address redirected to a non-http(s) URL")
    return target


def _http_url(url: str) -> httpx.URL | None:
    """The URL parsed once for every try and hop, or None when it is not a valid http(s) one."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    return parsed if parsed.scheme in ("http", "https") and parsed.host else None


def _reason(exc: BaseException) -> str:
    """A failure in a member's words: "Connection reset by peer", not "[Errno 104] ..."."""
    return re.sub(r"^\[Errno -?\d+\] ", "", str(exc)) or type(exc).__name__


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"ID3", "audio/mpeg"),
    (b"fLaC", "audio/flac"),
    (b"OggS", "audio/ogg"),
    (b"\x1aE\xdf\xa3", "video/webm"),
)


def _sniff(data: bytes) -> str | None:
    """The real type from the first bytes: servers often say application/octet-stream."""
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return "video/quicktime" if data[8:10] == b"qt" else "video/mp4"
    return None


def _dimensions(data: bytes) -> tuple[int | None, int | None]:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        # a PNG says its size first (IHDR): no need to open it with Pillow for that
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.width, image.height
    except (UnidentifiedImageError, OSError):
        return None, None
