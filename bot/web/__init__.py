"""The community web page (docs/web.md), mounted by the `[http]` listener under /web.

Server-rendered HTML (Jinja2, autoescaped), no JavaScript, a strict Content-Security-Policy on
every answer. `/web` in Discord or Slack signs members in (bot/web/signin.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.ledger.quota import Identity
from bot.web import again
from bot.web.access import Member
from bot.web.admin import AdminPages
from bot.web.bill import BillPages
from bot.web.hiding import Hiding
from bot.web.http import TEMPLATES, Refused, Sessions
from bot.web.names import Names
from bot.web.pages import Pages
from bot.web.signin import SignIns

if TYPE_CHECKING:
    from bot.app import Core

__all__ = [
    "PREFIX",
    "Hiding",
    "Member",
    "member_left",
    "member_seen",
    "signin_url",
    "signins",
    "web_app",
]

PREFIX = "/web"
STATIC = TEMPLATES.parent / "static"
HEADERS = {
    # Nothing runs but our own markup: no scripts at all, styles and media only from here.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; media-src 'self';"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Sign-in links carry their token in the path: never send it on as a Referer.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# Browsers say where a form was sent from: only this page's own forms may change anything (also
# the sign-in form, so another site cannot sign a visitor in as someone else).
CROSS_SITE = ("cross-site", "same-site")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def signins(core: Core) -> SignIns:
    """The sign-in store; the adapters' `/web` commands and the page share its tables."""
    web_settings = core.settings.web
    return SignIns(
        core.db, link_minutes=web_settings.link_minutes, session_hours=web_settings.session_hours
    )


async def member_seen(core: Core, identity: Identity, name: str) -> None:
    """An adapter saw this member with this display name (they used the bot)."""
    await Names(core.db, core.web).seen(identity, name)


async def member_left(core: Core, identity: Identity) -> None:
    """An adapter learnt that this member left the workspace: their web sessions end now."""
    await signins(core).end_member(identity)


def signin_url(core: Core, token: str) -> str | None:
    """The link `/web` answers with; None when `web.public_url` is not set."""
    base = core.settings.web.public_url
    return f"{base.rstrip('/')}{PREFIX}/signin/{token}" if base else None


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if request.method == "POST" and request.headers.get("Sec-Fetch-Site") in CROSS_SITE:
            raise Refused(403, "This form was sent from another site; nothing was changed.")
        response = await handler(request)
    except Refused as refused:
        response = aiohttp_jinja2.render_template(
            "message.html", request, {"text": refused.text}, status=refused.status
        )
    response.headers.update(HEADERS)
    return response


async def _css(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "site.css")


def _when(epoch: float) -> str:
    """A job's time as every reader sees it, whatever the server's zone."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def web_app(core: Core) -> web.Application:
    """The sub-application the listener mounts at `PREFIX`."""
    app = web.Application(middlewares=[_guard])
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(default=True),
    )
    env.filters["when"] = _when
    again.register(core)
    sessions = Sessions(signins(core), core.web, Names(core.db, core.web))
    app.router.add_routes(Pages(core, sessions).routes())
    bill = BillPages(core, sessions)
    app.router.add_routes(AdminPages(core, sessions, bill).routes())
    app.router.add_routes(bill.routes())
    app.router.add_get("/static/site.css", _css)
    return app
