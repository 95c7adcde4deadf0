"""`/show JOB_ID`: a past job's result again, for a viewer of the job's community.

Discord posts it again with its buttons, Slack answers with the text or the bot's links, the
terminal prints it; all from this one answer, so they agree on what a job made and whether it
is still kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from bot.delivery import Result
from bot.jobs.invocation import Community
from bot.jobs.service import JobService
from bot.jobs.states import WITH_RESULT, JobState
from bot.jobs.store import JobRecord
from bot.runpod.outputs import result_text


@dataclass(frozen=True)
class Viewer:
    """Who asks to see a job, and from where."""

    community: Community
    user: str
    own_only: bool = False  # sees only their own jobs (Discord DMs are all one community)

    def may_see(self, job: JobRecord) -> bool:
        return not self.own_only or job.member.user == self.user


@dataclass(frozen=True)
class PastResult:
    job_id: str
    state: JobState
    error: str | None
    made_at: float  # epoch seconds
    result: Result | None  # None: the job has no result (it failed, was cancelled, runs still)
    links: Mapping[str, str] = field(default_factory=dict)  # kept file name -> the bot's link

    @property
    def kept(self) -> bool:
        """The bot still has what the job made: its text, or its files."""
        return self.result is not None and bool(self.result.text or self.result.files)


async def past_result(jobs: JobService, job_id: str, viewer: Viewer) -> PastResult | None:
    """The job's result as the viewer may see it; None when no such job is theirs to see."""
    job = await jobs.job(job_id.strip().strip("`"), viewer.community)
    if job is None or not viewer.may_see(job):
        return None
    if job.state not in WITH_RESULT:
        return PastResult(job.id, job.state, job.error, job.created_at, None)
    model = jobs.catalog.get(job.model)
    files = await jobs.kept.files(job.id) or ()  # the archive, else the spool
    result = Result(
        job_id=job.id,
        command=job.command,
        model=model.name,
        model_id=model.id,
        prompt=jobs.request_of(job).prompt,
        kind=model.kind,
        files=files,
        text=result_text(model, job),
        seeds=tuple(c.seed for c in job.copies if c.status == "COMPLETED" and c.seed is not None),
        cost=job.cost or Decimal(0),
        elapsed_s=(job.finished_at or job.updated_at) - job.created_at,
        params=job.input,
    )
    links = jobs.kept.signed_links(job.id, files)
    return PastResult(job.id, job.state, job.error, job.created_at, result, links)
