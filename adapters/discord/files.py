"""Result files for Discord: fitted under a channel's upload limit (with a note for everything
changed), and uploaded so that their bytes go as soon as they are sent.

An image over the limit is re-encoded as JPEG (smaller quality, then smaller size, within
reason); anything still too big, and video or audio over the limit, is replaced by Runpod's own
link to it (valid 7 days). The user is always told which file changed and why.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

import discord
from PIL import Image, UnidentifiedImageError

from bot.delivery import MediaFile

log = logging.getLogger(__name__)

# Re-encoding tries these JPEG qualities at each of these scales before giving up on a file.
QUALITIES = (90, 80, 70)
SCALES = (1.0, 0.75, 0.5)
MIN_SIDE = 256  # smaller than this is a thumbnail, not the result: link to the original instead


class Upload(discord.File):
    """A file for discord.py that lets go of its bytes as soon as discord.py is done with it.

    discord.File's `close` (run after each send) puts the buffer's own `close` back on it as
    an attribute: a reference cycle, so the result's bytes stayed in memory until a full
    garbage collection, and made that collection longer. Here the cycle is undone and the
    buffer closed, so the bytes go when the message is sent.
    """

    def __init__(self, file: MediaFile, description: str | None) -> None:
        super().__init__(io.BytesIO(file.data), filename=file.filename, description=description)

    def close(self) -> None:
        super().close()
        vars(self.fp).pop("close", None)
        self.fp.close()


@dataclass(frozen=True)
class Fitted:
    uploads: tuple[MediaFile, ...]
    links: tuple[tuple[str, str], ...]  # (filename, url) of files too large to upload
    notes: tuple[str, ...]


def fit(files: tuple[MediaFile, ...], limit: int) -> Fitted:
    """Files to upload (each at most `limit` bytes), links for the rest, and what changed."""
    uploads: list[MediaFile] = []
    links: list[tuple[str, str]] = []
    notes: list[str] = []
    for file in files:
        if len(file.data) <= limit:
            uploads.append(file)
            continue
        smaller = shrink_image(file, limit) if file.content_type.startswith("image/") else None
        if smaller is not None:
            uploads.append(smaller)
            notes.append(
                f"{file.filename} was {mib(len(file.data))}, over this channel's"
                f" {mib(limit)} upload limit: posted as a smaller JPEG ({mib(len(smaller.data))})."
            )
        elif file.source_url:
            links.append((file.filename, file.source_url))
            notes.append(
                f"{file.filename} ({mib(len(file.data))}) is over this channel's"
                f" {mib(limit)} upload limit: linked instead (the link works for 7 days)."
            )
        else:
            notes.append(
                f"{file.filename} ({mib(len(file.data))}) is over this channel's"
                f" {mib(limit)} upload limit and has no link to share."
            )
    return Fitted(tuple(uploads), tuple(links), tuple(notes))


def shrink_image(file: MediaFile, limit: int) -> MediaFile | None:
    """The image as a JPEG of at most `limit` bytes, or None when that would ruin it."""
    try:
        with Image.open(io.BytesIO(file.data)) as opened:
            image = opened.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        log.warning("cannot re-encode %s: not a readable image", file.filename)
        return None
    for scale in SCALES:
        size = (round(image.width * scale), round(image.height * scale))
        if min(size) < MIN_SIDE and scale != 1.0:
            break
        scaled = image if scale == 1.0 else image.resize(size, Image.Resampling.LANCZOS)
        for quality in QUALITIES:
            buffer = io.BytesIO()
            scaled.save(buffer, "JPEG", quality=quality, optimize=True)
            if buffer.tell() <= limit:
                name = str(PurePosixPath(file.filename).with_suffix(".jpg"))
                return replace(
                    file,
                    filename=name,
                    content_type="image/jpeg",
                    data=buffer.getvalue(),
                    width=scaled.width,
                    height=scaled.height,
                )
    return None


def mib(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{max(1, round(size / 1024))} KB"
