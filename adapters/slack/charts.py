"""The charts of `/usage` and `/quota report`, sent to the asker's DM with the bot.

An ephemeral reply (or a response_url answer) cannot carry a file, and posting a member's
spend in the channel would show it to everyone, so the text answer stays private where the
command was typed and the chart follows as a file shared in the DM: files.completeUploadExternal
takes a user id in `channels` (no extra scope; an image block would need `http.public_url`).
The chart is drawn and uploaded after the text answer, so it never delays it; a chart that
cannot be sent is logged, the text has already answered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from slack_sdk.errors import SlackApiError, SlackClientError

from adapters.slack.context import SlackContext

log = logging.getLogger(__name__)


def send_chart(
    ctx: SlackContext, user: str, drawing: Awaitable[bytes], *, filename: str, title: str
) -> None:
    """Draw the chart and share it in `user`'s DM, in the background."""
    ctx.tasks.spawn(_upload(ctx, user, drawing, filename, title), name=f"chart-{filename}")


async def _upload(
    ctx: SlackContext, user: str, drawing: Awaitable[bytes], filename: str, title: str
) -> None:
    png = await drawing
    try:
        await ctx.client.files_upload_v2(
            channels=[user], file=png, filename=filename, title=title, alt_txt=title
        )
    except (SlackApiError, SlackClientError) as exc:
        log.warning("chart %s not sent to %s: %s", filename, user, exc)
