"""The member's pages: sign-in, the gallery, a result (and Run again, hiding), media, spend.

Every route but sign-in needs a live session, and reads only the session's workspace: jobs are
opened through `Community`-scoped lookups (another workspace's id answers 404, like an id never
issued), ledger scopes are built from the session's identity. Forms that change something carry
the session's CSRF token. Templates autoescape, so prompts and names stay text. Admins' pages
are bot/web/admin.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.commands import COMMANDS
from bot.errors import BotError
from bot.jobs.links import ROUTE as FILE_ROUTE
from bot.jobs.links import ResultLinks
from bot.jobs.past import Viewer, past_result
from bot.jobs.states import ACTIVE
from bot.jobs.store import JobRecord
from bot.ledger.quota import format_usd
from bot.ledger.quota_ops import describe_limit
from bot.runpod.outputs import result_text
from bot.web import gallery
from bot.web.again import run_again
from bot.web.chart import month_chart
from bot.web.gallery import Entry
from bot.web.hiding import Hiding, from_nsfw_channel
from bot.web.http import COOKIE, Refused, Sessions, csv_file, render, see_other
from bot.web.signin import Session

if TYPE_CHECKING:
    from bot.app import Core

MEDIA_LIFETIME_S = 10 * 60
EXCERPT = 280  # characters of a text result shown on its gallery card
MEDIA_PREFIX = "/web/media"


class Pages:
    def __init__(self, core: Core, sessions: Sessions) -> None:
        self._core = core
        self._sessions = sessions
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
        ]

    # --- sessions -------------------------------------------------------------------------

    async def signin_form(self, request: web.Request) -> web.Response:
        """A button, not a sign-in: link previews fetch GETs, and must not use up the link."""
        return render(request, "signin.html", {"token": request.match_info["token"]})

    async def signin(self, request: web.Request) -> web.Response:
        token = await self._sessions.signins.redeem(request.match_info["token"])
        if token is None:
            raise Refused(
                403, "This sign-in link was used already or has expired. Type /web again."
            )
        response = see_other("/web/")
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
        session = await self._sessions.member(request)
        await self._sessions.form(request, session)
        await self._sessions.signins.end(request.cookies[COOKIE])
        response = see_other("/web/")
        response.del_cookie(COOKIE, path="/web")
        return response

    # --- gallery and results --------------------------------------------------------------

    async def gallery(self, request: web.Request) -> web.Response:
        session = await self._sessions.member(request)
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
            names = await self._core.jobs.kept.names(entry.job_id)
            cards.append(
                {
                    "entry": entry,
                    "cost": format_usd(entry.cost),
                    "files": [self._file(entry.job_id, name, kind) for name, kind in names],
                    "excerpt": await self._excerpt(entry, session),
                }
            )
        filters = {"model": query.get("model", ""), "member": query.get("member", "")}
        return render(
            request,
            "gallery.html",
            {"session": session, "page": found, "cards": cards, "filters": filters},
        )

    async def _excerpt(self, entry: Entry, session: Session) -> str | None:
        """The start of a text result (/ask, /transcribe) for its card; None for media."""
        if COMMANDS[entry.command].output != "text":
            return None
        job = await self._core.jobs.job(entry.job_id, session.community)
        text = result_text(self._core.catalog.get(job.model), job) if job else None
        return text[:EXCERPT] if text else None

    async def job(self, request: web.Request) -> web.Response:
        session = await self._sessions.member(request)
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
            "running": past.state in ACTIVE,
            "may_hide": self._may_hide(job, session),
            "hidden": await self._hiding.hidden(job),
        }
        return render(request, "job.html", context)

    async def again(self, request: web.Request) -> web.Response:
        """Run again: a new job for the viewer, through the same quota and policy as chat."""
        session = await self._sessions.member(request)
        await self._sessions.form(request, session)
        try:
            started = await run_again(self._core, session, request.match_info["job"])
        except BotError as exc:
            raise Refused(400, str(exc)) from None
        return see_other(f"/web/job/{started.job_id}")

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
        return session.admin or job.member.user == session.identity.user

    async def hide_result(self, request: web.Request) -> web.Response:
        """Its owner or an admin takes one result off the page (or puts it back)."""
        session = await self._sessions.member(request)
        form = await self._sessions.form(request, session)
        job = await self._listed(request.match_info["job"], session)
        if job is None:
            raise Refused(404, "There is no such result here.")
        if not self._may_hide(job, session):
            raise Refused(403, "Only whoever made it and the workspace's admins can hide it.")
        await self._hiding.hide_result(job.id, session.identity, form.get("hidden") == "on")
        return see_other(f"/web/job/{job.id}")

    async def hide_mine(self, request: web.Request) -> web.Response:
        """The member's switch: none of their results on the page (or all again)."""
        session = await self._sessions.member(request)
        form = await self._sessions.form(request, session)
        await self._hiding.hide_member(session.identity, form.get("hidden") == "on")
        return see_other("/web/spend")

    def _file(self, job_id: str, name: str, content_type: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": content_type.split("/")[0],
            "url": self._media.url(job_id, name, MEDIA_LIFETIME_S),
        }

    async def media(self, request: web.Request) -> web.StreamResponse:
        session = await self._sessions.member(request)
        info = request.match_info
        job_id, name = info["job"], info["name"]
        if not self._media.valid(job_id, name, info["expires"], info["signature"]):
            raise Refused(403, "This media link is not valid or has expired; reload the page.")
        if not await self._listed(job_id, session):
            raise Refused(404, "There is no such result here.")
        path = self._core.jobs.kept.path(job_id, name)
        if path is None:
            raise Refused(404, "This result is no longer kept.")
        return web.FileResponse(path, headers={"Cache-Control": "private, max-age=600"})

    # --- spend ------------------------------------------------------------------------------

    async def spend(self, request: web.Request) -> web.Response:
        session = await self._sessions.member(request)
        usage = await self._core.ledger.usage(session.identity)
        context = {
            "session": session,
            "usage": usage,
            "usd": format_usd,
            "limit": describe_limit,
            "hidden": await self._hiding.member_hidden(session.identity),
            "chart": await month_chart(self._core.db, session.identity.user_key, self._zone),
        }
        return render(request, "spend.html", context)

    async def spend_csv(self, request: web.Request) -> web.Response:
        session = await self._sessions.member(request)
        usage = await self._core.ledger.usage(session.identity)
        rows = [("job_id", "model", "cost_usd", "state", "time_utc")]
        rows += [
            (job.job_id, job.model, str(job.cost), job.state, job.time.isoformat())
            for job in usage.recent
        ]
        return csv_file(rows, "spend.csv")
