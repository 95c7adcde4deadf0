"""What Runpod says about one job: its state and, once final, its output or error.

The same shape answers `/run`, `/status`, `/cancel` and arrives as a webhook body, so it is
parsed in one place, here, whichever way it came.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.runpod.errors import MalformedResponse, preview

log = logging.getLogger(__name__)

FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
KNOWN_STATES = FINAL_STATES | {"IN_QUEUE", "IN_PROGRESS", "RUNNING"}


@dataclass(frozen=True)
class RunpodStatus:
    """One answer about a job: `/run`, `/status`, `/cancel`, or a webhook body."""

    id: str
    status: str
    output: Any = None
    error: str | None = None
    delay_ms: int | None = None
    execution_ms: int | None = None
    worker_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATES

    @classmethod
    def parse(cls, body: Any) -> RunpodStatus:
        if not isinstance(body, Mapping) or not isinstance(body.get("id"), str):
            raise MalformedResponse(f"expected a job object with an id, got {preview(body)}")
        status = str(body.get("status") or "UNKNOWN").upper()
        if status not in KNOWN_STATES:
            log.warning("job %s: unknown status %r, treated as still running", body["id"], status)
        error = body.get("error")
        return cls(
            id=body["id"],
            status=status,
            output=body.get("output"),
            error=None if error is None else str(error),
            delay_ms=_int_or_none(body.get("delayTime")),
            execution_ms=_int_or_none(body.get("executionTime")),
            worker_id=body.get("workerId"),
            raw=body,
        )


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
