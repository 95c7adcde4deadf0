"""Signed links to spooled results, served by the bot's own `[http]` listener.

When a platform keeps refusing a result, the last route posts a short text with links instead
of uploads. Each URL names the job and the file and carries an expiry and an HMAC of all three,
keyed by a random secret kept next to the spool (made on first use, so links survive restarts):
nobody can guess a link to someone else's result or stretch one past its expiry.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote, unquote

ROUTE = "/results/{job}/{expires}/{signature}/{name}"
LIFETIME_S = 7 * 24 * 3600  # as long as Runpod's own output links


class ResultLinks:
    def __init__(self, base_url: str | None, key_file: Path) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self._key_file = key_file
        self._key: bytes | None = None

    def url(self, job_id: str, filename: str, lifetime_s: float = LIFETIME_S) -> str | None:
        """A link to one spooled file, or None when the listener has no public address."""
        if self.base_url is None:
            return None
        expires = str(int(time.time() + lifetime_s))
        path = ROUTE.format(
            job=job_id,
            expires=expires,
            signature=self._sign(job_id, filename, expires),
            name=quote(filename),
        )
        return self.base_url + path

    def target(self, url: str) -> tuple[str, str] | None:
        """(job id, file name) of one of this bot's own valid links; None for any other URL.

        A rerun's inputs are such links: the bot reads the file from disk, not over HTTP."""
        if self.base_url is None or not url.startswith(self.base_url + "/results/"):
            return None
        parts = url[len(self.base_url) + len("/results/") :].split("/")
        if len(parts) != 4:
            return None
        job_id, expires, signature, name = parts[0], parts[1], parts[2], unquote(parts[3])
        return (job_id, name) if self.valid(job_id, name, expires, signature) else None

    def valid(self, job_id: str, filename: str, expires: str, signature: str) -> bool:
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(self._sign(job_id, filename, expires), signature)

    def _sign(self, job_id: str, filename: str, expires: str) -> str:
        message = f"{job_id}\n{filename}\n{expires}".encode()
        return hmac.new(self._secret(), message, hashlib.sha256).hexdigest()[:32]

    def _secret(self) -> bytes:
        """The key, made once per data folder: written aside, then linked into place, so a
        process that loses the race to make it reads the winner's whole key, never a part."""
        if self._key is None:
            self._key_file.parent.mkdir(parents=True, exist_ok=True)
            if not self._key_file.exists():
                draft = self._key_file.with_name(f"{self._key_file.name}.{os.getpid()}")
                fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(secrets.token_bytes(32))
                with contextlib.suppress(FileExistsError):  # another process made it first
                    os.link(draft, self._key_file)
                draft.unlink()
            self._key = self._key_file.read_bytes()
        return self._key
