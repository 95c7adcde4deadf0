"""Small PNG charts of spend, drawn with Pillow (already a dependency for images).

Pillow rather than matplotlib (Agg): these are two plain bar charts, and matplotlib would add
a large dependency (with numpy) and its import time to a bot that otherwise never needs it,
while Pillow is already here and draws either chart in tens of milliseconds
(docs/benchmarks.md). The text answer always stays beside the chart, for screen readers and
clients that hide images.

    member_png: one member's spend this period: each bar is the total so far at the end of a
                day, its dark top that day's spend, the dashed line the period's limit.
    report_png: a workspace's spend per day stacked by model, and its top spenders.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from decimal import Decimal

from PIL import Image, ImageDraw, ImageFont

from bot.ledger.quota import format_usd
from bot.ledger.spend_history import MemberSpend, WorkspaceSpend

BACKGROUND = (255, 255, 255)
INK = (40, 40, 48)
GRID = (225, 225, 232)
SO_FAR = (167, 196, 235)
DAY = (44, 98, 181)
LIMIT = (205, 50, 50)
# Colour-blind-safe (Okabe-Ito), for models in the order of their spend.
PALETTE = [
    (0, 114, 178),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (86, 180, 233),
    (213, 94, 0),
    (150, 150, 150),
]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def member_png(spend: MemberSpend, *, today_index: int) -> bytes:
    """`today_index`: the position of today in `spend.days` (later days have no bar yet)."""
    width, height = 640, 300
    image, draw = _canvas(width, height)
    total = sum(spend.spent[: today_index + 1], Decimal(0))
    limit = f" of {format_usd(spend.limit)}" if spend.limit is not None else ", no limit"
    draw.text(
        (16, 10),
        f"Your spend {spend.period.adverb}: {format_usd(total)}{limit}",
        fill=INK,
        font=_font(16),
    )
    top = max(total, spend.limit or Decimal(0)) or Decimal("0.01")
    plot = _Plot(draw, left=70, top=44, right=width - 16, bottom=height - 34, top_value=top)
    plot.axes()
    so_far = Decimal(0)
    for i, day in enumerate(spend.days):
        if i <= today_index:
            so_far += spend.spent[i]
            plot.bar(i, len(spend.days), Decimal(0), so_far - spend.spent[i], SO_FAR)
            plot.bar(i, len(spend.days), so_far - spend.spent[i], so_far, DAY)
        plot.day_label(i, len(spend.days), day.day)
    if spend.limit is not None:
        plot.hline(spend.limit, LIMIT, "limit")
    return _png(image)


def report_png(spend: WorkspaceSpend, name_of: Callable[[str], str]) -> bytes:
    """Spend per day by model on top; the top spenders (named by `name_of`) below."""
    width, height = 720, 480
    image, draw = _canvas(width, height)
    days = len(spend.days)
    totals = [
        sum((series[i] for series in spend.by_model.values()), Decimal(0)) for i in range(days)
    ]
    draw.text((16, 10), f"Spend per day {spend.span}, by model", fill=INK, font=_font(16))
    top = max(totals, default=Decimal(0)) or Decimal("0.01")
    plot = _Plot(draw, left=70, top=40, right=width - 180, bottom=280, top_value=top)
    plot.axes()
    base = [Decimal(0)] * days
    for colour, (model, series) in zip(PALETTE, spend.by_model.items(), strict=False):
        for i in range(days):
            if series[i]:
                plot.bar(i, days, base[i], base[i] + series[i], colour)
                base[i] += series[i]
        _legend(draw, width - 168, 44 + 20 * list(spend.by_model).index(model), colour, model)
    for i, day in enumerate(spend.days):
        plot.day_label(i, days, day.day)
    _spenders(draw, [(name_of(key), usd) for key, usd in spend.top], top_y=310, width=width)
    return _png(image)


class _Plot:
    """A value axis from 0 to `top_value` over a pixel box, with day slots along the bottom."""

    def __init__(
        self,
        draw: ImageDraw.ImageDraw,
        *,
        left: int,
        top: int,
        right: int,
        bottom: int,
        top_value: Decimal,
    ) -> None:
        self.draw, self.left, self.top, self.right, self.bottom = draw, left, top, right, bottom
        self.top_value = top_value * Decimal("1.1")

    def y(self, value: Decimal) -> int:
        share = float(value / self.top_value) if self.top_value else 0.0
        return round(self.bottom - share * (self.bottom - self.top))

    def axes(self) -> None:
        font = _font(11)
        for step in range(5):
            value = self.top_value * step / 4
            y = self.y(value)
            self.draw.line((self.left, y, self.right, y), fill=GRID)
            label = format_usd(value)
            self.draw.text((self.left - 6, y), label, fill=INK, font=font, anchor="rm")

    def _slot(self, index: int, count: int) -> tuple[int, int]:
        slot = (self.right - self.left) / count
        x0 = self.left + index * slot + slot * 0.15
        return round(x0), round(x0 + max(slot * 0.7, 1))

    def bar(
        self, index: int, count: int, low: Decimal, high: Decimal, colour: tuple[int, ...]
    ) -> None:
        if high <= low:
            return
        x0, x1 = self._slot(index, count)
        self.draw.rectangle((x0, self.y(high), x1, self.y(low)), fill=colour)

    def day_label(self, index: int, count: int, day: int) -> None:
        if count > 10 and index % 2:
            return
        x0, x1 = self._slot(index, count)
        self.draw.text(
            ((x0 + x1) // 2, self.bottom + 6), str(day), fill=INK, font=_font(10), anchor="mt"
        )

    def hline(self, value: Decimal, colour: tuple[int, ...], label: str) -> None:
        y = self.y(value)
        for x in range(self.left, self.right, 12):
            self.draw.line((x, y, min(x + 7, self.right), y), fill=colour, width=2)
        self.draw.text((self.right, y - 3), label, fill=colour, font=_font(11), anchor="rb")


def _spenders(
    draw: ImageDraw.ImageDraw, top: Sequence[tuple[str, Decimal]], *, top_y: int, width: int
) -> None:
    draw.text((16, top_y), "Top spenders", fill=INK, font=_font(14))
    if not top:
        draw.text((16, top_y + 26), "No charges this period.", fill=INK, font=_font(12))
        return
    most = top[0][1] or Decimal(1)
    for row, (name, usd) in enumerate(top):
        y = top_y + 26 + row * 28
        draw.text((16, y + 9), _clip(name, 22), fill=INK, font=_font(12), anchor="lm")
        length = round(float(usd / most) * (width - 340))
        draw.rectangle((200, y, 200 + max(length, 1), y + 18), fill=DAY)
        draw.text((208 + length, y + 9), format_usd(usd), fill=INK, font=_font(12), anchor="lm")


def _legend(draw: ImageDraw.ImageDraw, x: int, y: int, colour: tuple[int, ...], label: str) -> None:
    draw.rectangle((x, y, x + 12, y + 12), fill=colour)
    draw.text((x + 18, y + 6), _clip(label, 20), fill=INK, font=_font(11), anchor="lm")


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _canvas(width: int, height: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (width, height), BACKGROUND)
    return image, ImageDraw.Draw(image)


_FONTS: dict[int, Font] = {}


def _font(size: int) -> Font:
    """Pillow's bundled font at `size` (scalable where Pillow has FreeType, else its bitmap)."""
    if size not in _FONTS:
        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
