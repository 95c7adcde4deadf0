"""The garbage collector looks at new objects less often, so full collections stay rare.

CPython collects its youngest generation every 700 net allocations of container objects and
the whole heap whenever the survivors of that have grown it by a quarter. A busy bot holds
thousands of waiting jobs, each about a hundred objects in its suspended coroutines, so at 75
commands/s per platform it ran a full collection every few seconds, each stopping the event loop
for up to 190 ms (docs/benchmarks.md), and every ack arriving then waited. Looked at every
`YOUNG` allocations instead, a request's short-lived objects are mostly gone by refcount before
the collector sees them, far fewer survive into the older generations, and in that bench no full
collection ran at all; peak memory did not change. Cycles are still collected, a little later.
"""

from __future__ import annotations

import gc

YOUNG = 10_000  # allocations between collections of the youngest generation (CPython: 700)


def collect_less_often() -> None:
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
