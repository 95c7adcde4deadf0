"""What every route of the web page shares: the session a request carries, its CSRF check, and
how answers are made (a rendered page, a refusal, a redirect, a CSV file)."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from bot.web.access import WebAccess
from bot.web.names import Names
from bot.web.signin import Session, SignIns

TEMPLATES = Path(__file__).parent / "templates"
COOKIE = "rpb_session"
SIGNED_OUT = "You are not signed in. Type /web in Discord or Slack for a sign-in link."
GONE = "You are no longer a member of this workspace; your web sessions have ended."


class Refused(Exception):
    """A request the page answers with a short explanation and this status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class Sessions:
    """The session behind a request, for routes that need one (or an admin's), as the platform
    still sees its member (bot/web/access.py): gone from the workspace ends it, the admin flag
    follows the platform's."""

    def __init__(self, signins: SignIns, access: WebAccess, names: Names) -> None:
        self.signins = signins
        self._access = access
        self._names = names

    async def member(self, request: web.Request, *, recheck: bool = False) -> Session:
        session = await self.signins.session(request.cookies.get(COOKIE))
        if session is None:
            raise Refused(401, SIGNED_OUT)
        check = self._access.due(session.identity, always=recheck)
        if check is None:
            return session
        try:
            now = await check(session.identity)
        except LookupError:
            return session
        if now is None:
            await self.signins.end_member(session.identity)
            raise Refused(401, GONE)
        await self._names.seen(session.identity, now.name)
        if now.admin != session.admin:
            await self.signins.set_admin(session.identity, now.admin)
        return replace(session, admin=now.admin)

    async def admin(self, request: web.Request) -> Session:
        session = await self.member(request, recheck=True)
        if not session.admin:
            raise Refused(403, "Only the workspace's admins can see this page.")
        return session

    @staticmethod
    async def form(request: web.Request, session: Session) -> dict[str, str]:
        """The posted form, once its CSRF token is the session's."""
        form = {key: str(value) for key, value in (await request.post()).items()}
        if not secrets.compare_digest(form.get("csrf", ""), session.csrf):
            raise Refused(403, "This form has expired; reload the page and try again.")
        return form


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def csv_file(rows: Sequence[Sequence[str]], filename: str) -> web.Response:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
