"""A folder keeping a copy of every result: `<media_dir>/<job id>/<file>`.

It backs `/show` and the free identical-request cache, and outlives Runpod's 7-day output URLs.
"""

from __future__ import annotations

from pathlib import Path

from bot.delivery import MediaFile
from bot.outputs import EXTENSIONS


class Archive:
    """A folder keeping a copy of every result: `<media_dir>/<job id>/<file>`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, job_id: str, files: tuple[MediaFile, ...]) -> None:
        folder = self.root / job_id
        folder.mkdir(parents=True, exist_ok=True)
        for file in files:
            (folder / Path(file.filename).name).write_bytes(file.data)

    def load(self, job_id: str) -> tuple[MediaFile, ...] | None:
        folder = self.root / job_id
        if not folder.is_dir():
            return None
        files = []
        for path in sorted(folder.iterdir()):
            content_type = _content_type(path.suffix)
            files.append(MediaFile(path.name, content_type, path.read_bytes()))
        return tuple(files) or None


def _content_type(suffix: str) -> str:
    for content_type, extension in EXTENSIONS.items():
        if suffix.lstrip(".") == extension:
            return content_type
    return "text/plain; charset=utf-8" if suffix in (".txt", ".srt") else "application/octet-stream"
