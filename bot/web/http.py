"""What every route of the web page shares: the session a request carries, its CSRF check, and
how answers are made (a rendered page, a refusal, a redirect, a CSV file)."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from bot.web.signin import Session, SignIns

TEMPLATES = Path(__file__).parent / "templates"
COOKIE = "rpb_session"
SIGNED_OUT = "You are not signed in. Type /web in Discord or Slack for a sign-in link."


class Refused(Exception):
    """A request the page answers with a short explanation and this status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class Sessions:
    """The session behind a request, for routes that need one (or an admin's)."""

    def __init__(self, signins: SignIns) -> None:
        self.signins = signins

    async def member(self, request: web.Request) -> Session:
        session = await self.signins.session(request.cookies.get(COOKIE))
        if session is None:
            raise Refused(401, SIGNED_OUT)
        return session

    async def admin(self, request: web.Request) -> Session:
        session = await self.member(request)
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
