"""A folder of results by job id: `<root>/<job id>/<file>`, plus a manifest of what each file is.

Two folders use it: the optional archive (`storage.media_dir`, every result kept; it backs
`/show` and the free identical-request cache, and outlives Runpod's 7-day output URLs) and the
spool (`bot.jobs.spool`, every paid result kept until it is delivered).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bot.delivery import MediaFile
from bot.runpod.outputs import EXTENSIONS

MANIFEST = ".files.json"  # content types, sizes and source links, in the order of the result


class Archive:
    """A folder keeping results: `<root>/<job id>/<file>`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, job_id: str, files: tuple[MediaFile, ...]) -> None:
        """Write the files, then the manifest: a folder with a manifest is complete."""
        folder = self.root / job_id
        folder.mkdir(parents=True, exist_ok=True)
        entries = []
        for file in files:
            name = Path(file.filename).name
            (folder / name).write_bytes(file.data)
            entries.append(
                {
                    "name": name,
                    "content_type": file.content_type,
                    "width": file.width,
                    "height": file.height,
                    "source_url": file.source_url,
                }
            )
        partial = folder / f"{MANIFEST}.partial"
        partial.write_text(json.dumps(entries), encoding="utf-8")
        partial.replace(folder / MANIFEST)

    def load(self, job_id: str) -> tuple[MediaFile, ...] | None:
        folder = self.root / job_id
        if not folder.is_dir():
            return None
        manifest = folder / MANIFEST
        if manifest.is_file():
            entries = json.loads(manifest.read_text(encoding="utf-8"))
            return tuple(
                MediaFile(
                    e["name"],
                    e["content_type"],
                    (folder / e["name"]).read_bytes(),
                    e["width"],
                    e["height"],
                    e["source_url"],
                )
                for e in entries
            )
        files = []  # archived before manifests existed
        for path in sorted(folder.iterdir()):
            if not path.name.startswith("."):
                content_type = _content_type(path.suffix)
                files.append(MediaFile(path.name, content_type, path.read_bytes()))
        return tuple(files) or None

    def names(self, job_id: str) -> tuple[tuple[str, str], ...] | None:
        """(file name, content type) of each kept file, without reading the files (listings)."""
        folder = self.root / job_id
        if not (_plain_name(job_id) and folder.is_dir()):
            return None
        manifest = folder / MANIFEST
        if manifest.is_file():
            entries = json.loads(manifest.read_text(encoding="utf-8"))
            return tuple((e["name"], e["content_type"]) for e in entries)
        paths = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        return tuple((p.name, _content_type(p.suffix)) for p in paths) or None

    def path(self, job_id: str, filename: str) -> Path | None:
        """The stored file, if this folder has it (names are checked, never joined blindly)."""
        if not (_plain_name(job_id) and _plain_name(filename)):
            return None
        path = self.root / job_id / filename
        return path if path.is_file() else None

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    def folders(self) -> list[tuple[str, float, int]]:
        """(job id, last written, bytes) of every stored result."""
        found = []
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if folder.is_dir():
                    files = [p.stat() for p in folder.iterdir() if p.is_file()]
                    written = max((s.st_mtime for s in files), default=folder.stat().st_mtime)
                    found.append((folder.name, written, sum(s.st_size for s in files)))
        return found


def _plain_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and Path(name).name == name


def _content_type(suffix: str) -> str:
    for content_type, extension in EXTENSIONS.items():
        if suffix.lstrip(".") == extension:
            return content_type
    return "text/plain; charset=utf-8" if suffix in (".txt", ".srt") else "application/octet-stream"
