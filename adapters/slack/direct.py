"""`DirectDelivery`: a result in the member's DM with the bot, as the web page's "Run again" asks.

`Route.DIRECT` of `SlackDelivery` is the fallback of a refused channel: it posts to the user id
with links only. A result the member asked for from the page should arrive whole, so this opens
the DM (`conversations.open`, which gives the `D…` channel files can be uploaded to) and posts
the result there as new messages, files uploaded, with its card. Other routes are unchanged.
"""

from __future__ import annotations

from dataclasses import replace

from adapters.slack.delivery import SlackDelivery
from bot.delivery import Result, Route


class DirectDelivery(SlackDelivery):
    async def deliver(self, result: Result, route: Route = Route.EDIT) -> None:
        if route is Route.DIRECT:
            answer = await self._client.conversations_open(users=self.ref.user)
            extra = {**self.ref.extra, "origin": "reroll", "prompt": result.prompt[:500]}
            dm = str(answer["channel"]["id"])
            self.ref = replace(self.ref, channel=dm, thread=None, extra=extra)
            route = Route.MESSAGE
        await super().deliver(result, route)
