"""The adapter's pure parts: message splitting, fitting files under upload limits, error texts."""

from __future__ import annotations

import gc
import io
import logging
import weakref
from decimal import Decimal

import pytest
from discord.http import handle_message_parameters
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from adapters.discord.context import APOLOGY, user_message
from adapters.discord.files import Upload, fit, shrink_image
from adapters.discord.render import failure_text
from adapters.discord.text import code_block, split_message
from bot.delivery import Failure, MediaFile
from bot.errors import PolicyDenied

FENCE = "```"


def fence_state_after(lines: list[str]) -> bool:
    """True when the lines leave a code fence open."""
    open_ = False
    for line in lines:
        if line.strip().startswith(FENCE):
            open_ = not open_ if (not open_ or line.strip().rstrip("`") == "") else open_
    return open_


def content(text: str) -> str:
    """Everything but fence lines and whitespace: what a split must keep, in order."""
    kept = [line for line in text.split("\n") if not line.strip().startswith(FENCE)]
    return "".join("".join(kept).split())


lines = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\n`"), max_size=80
    ),
    st.sampled_from(["```", "```python", "```js", "", "    indented code"]),
    # Long lines (cut into pieces) with inline code, but no run of three backticks to cut.
    st.text(alphabet="ab `", min_size=100, max_size=3000).filter(lambda t: FENCE not in t),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(lines, max_size=60), st.integers(min_value=100, max_value=2000))
def test_split_chunks_fit_keep_fences_balanced_and_lose_nothing(
    parts: list[str], limit: int
) -> None:
    text = "\n".join(parts)
    chunks = split_message(text, limit)
    assert all(0 < len(chunk) <= limit for chunk in chunks)
    assert not any(fence_state_after(chunk.split("\n")) for chunk in chunks)
    assert content("\n".join(chunks)) == content(text)


def test_a_split_inside_a_code_block_closes_and_reopens_it() -> None:
    code = "\n".join(f"line {i} " + "x" * 60 for i in range(60))
    chunks = split_message(f"Intro.\n\n```python\n{code}\n```\nOutro.")
    assert len(chunks) == 3
    assert chunks[0].startswith("Intro.") and chunks[0].endswith("\n```")
    assert chunks[1].startswith("```python\nline") and chunks[1].endswith("\n```")
    assert chunks[2].endswith("```\nOutro.")


def test_short_text_is_one_chunk_and_empty_text_none() -> None:
    assert split_message("hello\nworld") == ["hello\nworld"]
    assert split_message("") == [] and split_message("\n\n") == []


def test_code_block_cannot_be_ended_by_its_content() -> None:
    block = code_block("a ``` b")
    assert block.count(FENCE) == 2 and block.startswith("```\n") and block.endswith("\n```")


def _png(size: tuple[int, int], noise: bool = True) -> bytes:
    image = Image.effect_noise(size, 80).convert("RGB") if noise else Image.new("RGB", size)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_files_under_the_limit_are_untouched() -> None:
    file = MediaFile("a.png", "image/png", _png((64, 64)), 64, 64)
    fitted = fit((file,), len(file.data))
    assert fitted.uploads == (file,) and not fitted.links and not fitted.notes


def test_a_sent_file_lets_go_of_its_bytes_without_waiting_for_the_collector() -> None:
    upload = Upload(MediaFile("a.png", "image/png", bytes(200_000)), None)
    gc.disable()  # what would free a reference cycle: it must not be needed
    try:
        with handle_message_parameters(file=upload):  # discord.py's send closes its files here
            pass
        buffer = weakref.ref(upload.fp)
        del upload
        assert buffer() is None
    finally:
        gc.enable()


def test_an_oversized_image_becomes_a_smaller_jpeg() -> None:
    data = _png((768, 768))
    file = MediaFile("big.png", "image/png", data, 768, 768, source_url="https://x.example/big.png")
    fitted = fit((file,), len(data) // 3)
    (smaller,) = fitted.uploads
    assert smaller.filename == "big.jpg" and smaller.content_type == "image/jpeg"
    assert len(smaller.data) <= len(data) // 3 and not fitted.links
    assert "posted as a smaller JPEG" in fitted.notes[0]


def test_what_cannot_shrink_is_linked_or_explained() -> None:
    audio = MediaFile(
        "a.wav", "audio/wav", b"RIFF" + bytes(5000), source_url="https://x.example/a.wav"
    )
    lost = MediaFile("b.wav", "audio/wav", b"RIFF" + bytes(5000))
    image = MediaFile("c.png", "image/png", _png((512, 512)), source_url="https://x.example/c.png")
    fitted = fit((audio, lost, image), 300)
    assert fitted.uploads == ()
    assert fitted.links == (
        ("a.wav", "https://x.example/a.wav"),
        ("c.png", "https://x.example/c.png"),
    )
    assert "has no link to share" in fitted.notes[1]
    assert shrink_image(MediaFile("x.png", "image/png", b"not an image"), 10_000) is None


def test_refusals_say_nothing_was_charged_and_unexpected_errors_say_nothing_of_money(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert user_message(PolicyDenied("Not here.")) == "Not here. Nothing was charged."
    assert user_message(PolicyDenied("Not here."), about_a_job=False) == "Not here."
    with caplog.at_level(logging.ERROR):
        shown = user_message(RuntimeError("database is locked at /secret/path"))
    assert shown == APOLOGY, "the job may already be held and running: no claim about charges"
    assert "secret" not in shown
    assert caplog.records[0].exc_info is not None  # the traceback is logged, not shown


def test_failure_text_says_what_was_charged() -> None:
    assert failure_text(Failure("j", "The job failed: boom.")) == (
        "The job failed: boom. Nothing was charged."
    )
    assert failure_text(Failure("j", "Cancelled. Nothing was charged.")) == (
        "Cancelled. Nothing was charged."
    )
    assert failure_text(Failure("j", "2 of 3 failed.", charged=Decimal("0.02"))) == (
        "2 of 3 failed. Charged $0.02."
    )
