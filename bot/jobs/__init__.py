"""The job engine: from a member's request to a delivered, charged result.

What the adapters may use is imported here; the other modules are the package's own.
"""

from bot.jobs.conversations import COMMAND, Thread
from bot.jobs.invocation import UNKNOWN_JOB, Community, Invocation, Submitted
from bot.jobs.past import PastResult, Viewer, past_result
from bot.jobs.states import RUNNING

__all__ = [
    "COMMAND",
    "RUNNING",
    "UNKNOWN_JOB",
    "Community",
    "Invocation",
    "PastResult",
    "Submitted",
    "Thread",
    "Viewer",
    "past_result",
]
