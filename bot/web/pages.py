"""The web page's routes: sign-in, gallery, a result, media, spend, limits for admins.

Every route but sign-in needs a live session, and reads only the session's workspace: jobs are
opened through `Community`-scoped lookups (another workspace's id answers 404, like an id never
issued), ledger scopes are built from the session's identity. Forms that change something carry
the session's CSRF token. Templates autoescape, so prompts and names stay text.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web

from bot.config import QuotaLimits
from bot.errors import BotError
from bot.jobstore import ACTIVE_STATES, JobRecord
from bot.ledger_records import Report
from bot.links import ROUTE as FILE_ROUTE
from bot.links import ResultLinks
from bot.past import Viewer, past_result
from bot.periods import Period, window
from bot.quota import Identity, format_usd
from bot.quota_ops import describe_limit, parse_limit, parse_usd
from bot.web import gallery
from bot.web.again import run_again
from bot.web.chart import month_chart
from bot.web.hiding import Hiding, from_nsfw_channel
from bot.web.outcomes import outcomes
from bot.web.signin import Session, SignIns

if TYPE_CHECKING:
    from bot.app import Core

COOKIE = "rpb_session"
MEDIA_LIFETIME_S = 10 * 60
MEDIA_PREFIX = "/web/media"
PERIODS = ("daily", "weekly", "monthly")
SIGNED_OUT = "You are not signed in. Type /web in Discord or Slack for a sign-in link."


class Refused(Exception):
    """A request the page answers with a short explanation and this status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class Pages:
    def __init__(self, core: Core, signins: SignIns) -> None:
        self._core = core
        self._signins = signins
        self._media = ResultLinks(MEDIA_PREFIX, core.settings.storage.spool_dir / ".web-media-key")
        self._secure = (core.settings.web.public_url or "").startswith("https://")
        self._nsfw = [model.id for model in core.catalog if model.nsfw]
        self._hiding = Hiding(core.db)
        self._nsfw_slack = list(core.settings.slack.nsfw_channels)
        self._zone = ZoneInfo(core.settings.quotas.timezone)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.gallery),
            web.get("/signin/{token}", self.signin_form),
            web.post("/signin/{token}", self.signin),
            web.post("/signout", self.signout),
            web.get("/job/{job}", self.job),
            web.post("/job/{job}/again", self.again),
            web.post("/job/{job}/hide", self.hide_result),
            web.post("/spend/hide-mine", self.hide_mine),
            web.get("/media" + FILE_ROUTE, self.media),
            web.get("/spend", self.spend),
            web.get("/spend.csv", self.spend_csv),
            web.get("/admin", self.admin),
            web.post("/admin/limits", self.set_limits),
            web.post("/admin/grant", self.grant),
            web.post("/admin/unlimited", self.unlimited),
            web.post("/admin/signout", self.revoke),
            web.get("/admin/report.csv", self.report_csv),
        ]

    # --- sessions -------------------------------------------------------------------------

    async def _session(self, request: web.Request) -> Session:
        session = await self._signins.session(request.cookies.get(COOKIE))
        if session is None:
            raise Refused(401, SIGNED_OUT)
        return session

    async def _form(self, request: web.Request, session: Session) -> dict[str, str]:
        """The posted form, once its CSRF token is the session's."""
        form = {key: str(value) for key, value in (await request.post()).items()}
        if not secrets.compare_digest(form.get("csrf", ""), session.csrf):
            raise Refused(403, "This form has expired; reload the page and try again.")
        return form

    async def signin_form(self, request: web.Request) -> web.Response:
        """A button, not a sign-in: link previews fetch GETs, and must not use up the link."""
        return _render(request, "signin.html", {"token": request.match_info["token"]})

    async def signin(self, request: web.Request) -> web.Response:
        token = await self._signins.redeem(request.match_info["token"])
        if token is None:
            raise Refused(
                403, "This sign-in link was used already or has expired. Type /web again."
            )
        response = _see_other("/web/")
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(self._core.settings.web.session_hours * 3600),
            path="/web",
            httponly=True,
            samesite="Lax",
            secure=self._secure,
        )
        return response

    async def signout(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        await self._form(request, session)
        await self._signins.end(request.cookies[COOKIE])
        response = _see_other("/web/")
        response.del_cookie(COOKIE, path="/web")
        return response

    # --- gallery and results --------------------------------------------------------------

    async def gallery(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        query = request.query
        number = int(query["page"]) if query.get("page", "").isdigit() else 1
        found = await gallery.page(
            self._core.db,
            session.community,
            number,
            model=query.get("model") or None,
            member=query.get("member") or None,
            unlisted_models=self._nsfw,
            nsfw_slack_channels=self._nsfw_slack,
        )
        cards = []
        for entry in found.entries:
            names = await self._core.jobs.result_names(entry.job_id)
            cards.append(
                {
                    "entry": entry,
                    "cost": format_usd(entry.cost),
                    "files": [self._file(entry.job_id, name, kind) for name, kind in names],
                }
            )
        filters = {"model": query.get("model", ""), "member": query.get("member", "")}
        return _render(
            request,
            "gallery.html",
            {"session": session, "page": found, "cards": cards, "filters": filters},
        )

    async def job(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        job_id = request.match_info["job"]
        viewer = Viewer(session.community, session.identity.user)
        job = await self._listed(job_id, session)
        past = await past_result(self._core.jobs, job_id, viewer) if job else None
        if job is None or past is None:
            raise Refused(404, "There is no such result here.")
        files = []
        if past.result is not None:
            files = [self._file(job_id, f.filename, f.content_type) for f in past.result.files]
        call = await self._core.jobs.show_request(job_id, session.community)
        context = {
            "session": session,
            "past": past,
            "files": files,
            "api_call": call,
            "running": past.state in ACTIVE_STATES,
            "may_hide": self._may_hide(job, session),
            "hidden": await self._hiding.hidden(job),
        }
        return _render(request, "job.html", context)

    async def again(self, request: web.Request) -> web.Response:
        """Run again: a new job for the viewer, through the same quota and policy as chat."""
        session = await self._session(request)
        await self._form(request, session)
        try:
            started = await run_again(self._core, session, request.match_info["job"])
        except BotError as exc:
            raise Refused(400, str(exc)) from None
        return _see_other(f"/web/job/{started.job_id}")

    async def _listed(self, job_id: str, session: Session) -> JobRecord | None:
        """The job, if this session may see it: of its workspace, of a model and a channel the
        page shows, and not hidden (its owner and admins still see a hidden one)."""
        job = await self._core.jobs.job(job_id, session.community)
        if job is None or job.model in self._nsfw or from_nsfw_channel(job, self._nsfw_slack):
            return None
        if self._may_hide(job, session) or not await self._hiding.hidden(job):
            return job
        return None

    @staticmethod
    def _may_hide(job: JobRecord, session: Session) -> bool:
        return session.admin or job.identity[2] == session.identity.user

    async def hide_result(self, request: web.Request) -> web.Response:
        """Its owner or an admin takes one result off the page (or puts it back)."""
        session = await self._session(request)
        form = await self._form(request, session)
        job = await self._listed(request.match_info["job"], session)
        if job is None:
            raise Refused(404, "There is no such result here.")
        if not self._may_hide(job, session):
            raise Refused(403, "Only whoever made it and the workspace's admins can hide it.")
        await self._hiding.hide_result(job.id, session.identity, form.get("hidden") == "on")
        return _see_other(f"/web/job/{job.id}")

    async def hide_mine(self, request: web.Request) -> web.Response:
        """The member's switch: none of their results on the page (or all again)."""
        session = await self._session(request)
        form = await self._form(request, session)
        await self._hiding.hide_member(session.identity, form.get("hidden") == "on")
        return _see_other("/web/spend")

    def _file(self, job_id: str, name: str, content_type: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": content_type.split("/")[0],
            "url": self._media.url(job_id, name, MEDIA_LIFETIME_S),
        }

    async def media(self, request: web.Request) -> web.StreamResponse:
        session = await self._session(request)
        info = request.match_info
        job_id, name = info["job"], info["name"]
        if not self._media.valid(job_id, name, info["expires"], info["signature"]):
            raise Refused(403, "This media link is not valid or has expired; reload the page.")
        if not await self._listed(job_id, session):
            raise Refused(404, "There is no such result here.")
        path = self._core.jobs.result_path(job_id, name)
        if path is None:
            raise Refused(404, "This result is no longer kept.")
        return web.FileResponse(path, headers={"Cache-Control": "private, max-age=600"})

    # --- spend ------------------------------------------------------------------------------

    async def spend(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        usage = await self._core.ledger.usage(session.identity)
        context = {
            "session": session,
            "usage": usage,
            "usd": format_usd,
            "limit": describe_limit,
            "hidden": await self._hiding.member_hidden(session.identity),
            "chart": await month_chart(self._core.db, session.identity.user_key, self._zone),
        }
        return _render(request, "spend.html", context)

    async def spend_csv(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        usage = await self._core.ledger.usage(session.identity)
        rows = [("job_id", "model", "cost_usd", "state", "time_utc")]
        rows += [
            (job.job_id, job.model, str(job.cost), job.state, job.time.isoformat())
            for job in usage.recent
        ]
        return _csv(rows, "spend.csv")

    # --- limits for admins ------------------------------------------------------------------

    async def _admin(self, request: web.Request) -> Session:
        session = await self._session(request)
        if not session.admin:
            raise Refused(403, "Only the workspace's admins can see this page.")
        return session

    async def admin(self, request: web.Request, done: str | None = None) -> web.Response:
        session = await self._admin(request)
        pool = await self._core.ledger.usage(session.identity)
        report = await self._report(session)
        context = {
            "session": session,
            "pool": pool.workspace,
            "report": report,
            "chart": await month_chart(self._core.db, session.identity.pool_key, self._zone),
            "outcomes": await outcomes(self._core.db, session.community, report.since),
            "usd": format_usd,
            "limit": describe_limit,
            "done": done,
        }
        return _render(request, "admin.html", context)

    async def _report(self, session: Session) -> Report:
        """This month's settled spend in the workspace, by model and by member."""
        span = window(Period.MONTH, datetime.now(UTC), self._zone)
        return await self._core.ledger.report(session.identity.pool_key, span.start, span.end)

    async def report_csv(self, request: web.Request) -> web.Response:
        session = await self._admin(request)
        report = await self._report(session)
        rows = [("by", "key", "jobs", "charged_usd")]
        rows += [("model", line.key, str(line.jobs), str(line.charged)) for line in report.by_model]
        rows += [
            ("member", line.key.rsplit(":", 1)[-1], str(line.jobs), str(line.charged))
            for line in report.by_user
        ]
        return _csv(rows, "workspace-spend.csv")

    def _member_scope(self, session: Session, form: dict[str, str]) -> tuple[str, str]:
        """(ledger scope key, how the page names it): a member of this workspace, else its pool."""
        me = session.identity
        member = form.get("member", "").strip()
        if not member:
            return me.pool_key, "the workspace"
        try:
            return Identity(me.platform, me.workspace, member).user_key, f"member {member}"
        except ValueError:
            raise Refused(400, f"{member!r} is not a member id.") from None

    async def set_limits(self, request: web.Request) -> web.Response:
        session = await self._admin(request)
        form = await self._form(request, session)
        scope, whom = self._member_scope(session, form)
        try:
            given: dict[str, Decimal | None] = {
                f"{period}_usd": parse_limit(form[period], period)
                for period in PERIODS
                if form.get(period, "").strip()
            }
        except BotError as exc:
            raise Refused(400, str(exc)) from None
        if not given:
            raise Refused(400, "Give at least one of daily, weekly or monthly.")
        by = session.identity.user_key
        await self._core.ledger.set_limits(scope, QuotaLimits(**given), by=by)
        shown = ", ".join(f"{k.removesuffix('_usd')} {describe_limit(v)}" for k, v in given.items())
        return await self.admin(request, done=f"Limits of {whom} set: {shown}.")

    async def grant(self, request: web.Request) -> web.Response:
        session = await self._admin(request)
        form = await self._form(request, session)
        scope, whom = self._member_scope(session, form)
        try:
            amount = parse_usd(form.get("amount", ""), "the amount")
            await self._core.ledger.grant(
                scope, amount, form.get("reason", ""), by=session.identity.user_key
            )
        except BotError as exc:
            raise Refused(400, str(exc)) from None
        return await self.admin(request, done=f"Granted {format_usd(amount)} to {whom}.")

    async def unlimited(self, request: web.Request) -> web.Response:
        session = await self._admin(request)
        form = await self._form(request, session)
        scope, whom = self._member_scope(session, form)
        on = form.get("unlimited") == "on"
        await self._core.ledger.set_unlimited(scope, on, by=session.identity.user_key)
        state = "no limit" if on else "their limits again"
        return await self.admin(request, done=f"{whom.capitalize()} now has {state}.")

    async def revoke(self, request: web.Request) -> web.Response:
        """An admin ends every web session of a member of this workspace."""
        session = await self._admin(request)
        form = await self._form(request, session)
        scope, whom = self._member_scope(session, form)
        if scope == session.identity.pool_key:
            raise Refused(400, "Name the member whose sessions end.")
        me = session.identity
        await self._signins.end_member(Identity(me.platform, me.workspace, form["member"].strip()))
        return await self.admin(request, done=f"Every web session of {whom} has ended.")


def _csv(rows: Sequence[Sequence[str]], filename: str) -> web.Response:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


TEMPLATES = Path(__file__).parent / "templates"
