"""Checks on a chart as a member receives it: a valid PNG, small enough for both platforms."""

from __future__ import annotations

import io

from PIL import Image

from bot.charts import DAY, PALETTE

# The lowest upload limit Discord has given bots (8 MiB; later 10 and 25 MiB), and Slack's.
DISCORD_MAX_BYTES = 8 * 1024 * 1024
SLACK_MAX_BYTES = 1024**3
TODAY_BAR = DAY
TOP_MODEL = PALETTE[0]


def checked_png(data: bytes) -> Image.Image:
    """The chart, after checking it is a whole PNG that both platforms take."""
    assert len(data) <= min(DISCORD_MAX_BYTES, SLACK_MAX_BYTES)
    Image.open(io.BytesIO(data)).verify()  # a truncated or corrupt file raises here
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.convert("RGB")


def shows(image: Image.Image, colour: tuple[int, int, int]) -> bool:
    """Whether some pixel has `colour` (a bar drawn in it is there)."""
    return any(c == colour for _, c in image.getcolors(maxcolors=1 << 20) or [])
