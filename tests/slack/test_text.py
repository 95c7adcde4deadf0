"""Slack text handling: what users typed becomes plain text; what we echo can ping no one."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.slack.text import (
    code_block,
    escape,
    from_slack,
    split_text,
    strip_mentions_of,
    take_links,
    unescape,
)

MARKUP = re.compile(r"<[^>]*>")


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        ("a cat &amp; a dog", "a cat & a dog"),
        ("&lt;!channel&gt; hi", "<!channel> hi"),  # typed literally: stays text
        ("<!channel> <!here|here> <!everyone>", "@channel @here @everyone"),
        ("<@U123> and <@U456|bob>", "@U123 and @bob"),
        ("<!subteam^S1> <!subteam^S2|@design>", "@S1 @design"),
        ("<#C1|general> <#C2>", "#general #C2"),
        ("see <https://x.com/a?b=1&amp;c=2|x.com>", "see https://x.com/a?b=1&c=2"),
        ("<mailto:a@b.c|a@b.c>", "a@b.c"),
        ("<!date^1392734382^{date}|Feb 18>", "Feb 18"),
    ],
)
def test_from_slack_gives_what_the_user_saw(raw: str, plain: str) -> None:
    assert from_slack(raw) == plain


@given(st.text())
def test_escaped_text_contains_no_markup_and_reads_back(text: str) -> None:
    shown = escape(text)
    assert "<" not in shown and ">" not in shown
    assert unescape(shown) == text


@given(st.text())
def test_echoing_any_input_can_ping_no_one(raw: str) -> None:
    assert not MARKUP.search(escape(from_slack(raw)))


def test_links_and_mentions_of_the_bot_are_taken_out() -> None:
    assert take_links("fix this https://a.b/c.png please") == (
        "fix this please",
        ["https://a.b/c.png"],
    )
    assert strip_mentions_of("<@UBOT> imagine <@UBOT|bot> a cat", "UBOT") == "imagine   a cat"


@given(
    st.text(alphabet=st.sampled_from("ab &<>\n`"), max_size=3000),
    st.integers(min_value=40, max_value=400),
)
def test_split_text_keeps_every_word_within_the_limit(text: str, limit: int) -> None:
    shown = escape(text)
    pieces = split_text(shown, limit)
    assert all(len(piece) <= limit for piece in pieces)
    assert all(not re.search(r"&[a-z]{0,3}$", piece) for piece in pieces)
    joined = "".join(p.replace("```", "") for p in pieces)
    assert re.sub(r"\s", "", joined) == re.sub(r"\s", "", shown.replace("```", ""))


def test_a_code_block_cut_in_two_is_closed_and_reopened() -> None:
    text = "intro\n```\n" + "\n".join(f"line {i}" for i in range(200)) + "\n```\nend"
    pieces = split_text(text, 500)
    assert len(pieces) > 2
    assert all(piece.count("```") % 2 == 0 for piece in pieces)


def test_code_block_escapes_and_fits() -> None:
    block = code_block("<!here> & " + "x" * 5000, 300)
    assert len(block) <= 300 and block.startswith("```\n&lt;!here&gt; &amp; ")
    assert block.endswith("…\n```")
