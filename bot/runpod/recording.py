"""How long a recording lasts, read from its own bytes before it is sent to be transcribed.

A transcription is billed per character of transcript, and only the recording's length bounds
that, so the bot reads the length before `/run` to size the hold (`pricing.bound`). mutagen reads
the common containers (WAV, MP3, MP4/M4A/MOV, Ogg, FLAC; not WebM) in pure Python. A file it
cannot read has no known length: the job holds the configured cap instead.
"""

from __future__ import annotations

import io
import logging
import math

import mutagen

log = logging.getLogger(__name__)


def seconds_of(data: bytes) -> float | None:
    """The recording's length in seconds, or None when its format or header cannot be read."""
    try:
        found = mutagen.File(io.BytesIO(data))
    except Exception as exc:  # damaged files raise more than MutagenError (struct, EOF, ...)
        log.info("recording length unreadable: %s: %s", type(exc).__name__, exc)
        return None
    length = getattr(getattr(found, "info", None), "length", None)
    if not isinstance(length, int | float) or not math.isfinite(length) or length <= 0:
        return None
    return float(length)
