"""The concurrency caps in one process (bot/jobs/slots.py): order per user, both caps, the
place shown, a cancelled waiter leaving its line, and the store's say (`claim`)."""

import asyncio
from collections.abc import Callable
from typing import Any

from bot.jobs.slots import Claim, Slots


class Starts:
    """The jobs that got a slot, in order; `until` waits for a count of them."""

    def __init__(self) -> None:
        self.jobs: list[str] = []
        self._changed = asyncio.Condition()

    async def hold(self, slots: Slots, job: str, release: asyncio.Event) -> None:
        async with slots.slot(job, user=job[0]):
            async with self._changed:
                self.jobs.append(job)
                self._changed.notify_all()
            await release.wait()

    async def until(self, count: int) -> list[str]:
        async with asyncio.timeout(5), self._changed:
            await self._changed.wait_for(lambda: len(self.jobs) >= count)
        return self.jobs


def _start(
    starts: Starts, slots: Slots, gates: dict[str, asyncio.Event]
) -> Callable[[str], asyncio.Task[Any]]:
    return lambda job: asyncio.create_task(starts.hold(slots, job, gates[job]))


async def test_a_users_jobs_start_in_order_within_both_caps() -> None:
    slots, starts = Slots(per_user=1, total=2), Starts()
    gates = {job: asyncio.Event() for job in ("a1", "a2", "a3", "b1", "c1")}
    tasks = [_start(starts, slots, gates)(job) for job in gates]
    assert await starts.until(2) == ["a1", "b1"], "one per user, two in all"
    await asyncio.sleep(0)  # the others are in line once they ran to their first wait
    assert (slots.position("a2"), slots.position("a3"), slots.position("c1")) == (1, 2, 1)
    gates["a1"].set()
    assert (await starts.until(3))[2] in ("a2", "c1")
    for gate in gates.values():
        gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert sorted(starts.jobs) == sorted(gates)
    assert starts.jobs.index("a2") < starts.jobs.index("a3")


async def test_a_cancelled_waiter_lets_the_next_of_its_user_start() -> None:
    slots, starts = Slots(per_user=1, total=5), Starts()
    gates = {"a1": asyncio.Event(), "a2": asyncio.Event(), "a3": asyncio.Event()}
    start = _start(starts, slots, gates)
    first = start("a1")
    await starts.until(1)
    waiting, last = start("a2"), start("a3")
    await asyncio.sleep(0)
    assert slots.position("a3") == 2
    waiting.cancel()
    await asyncio.sleep(0)
    assert slots.position("a2") is None and slots.position("a3") == 1
    gates["a1"].set()
    assert await starts.until(2) == ["a1", "a3"]
    gates["a3"].set()
    await asyncio.wait_for(asyncio.gather(first, last), 5)


async def test_a_job_waits_while_the_store_says_no_and_asks_again() -> None:
    slots = Slots(per_user=2, total=2, poll_s=0.01)
    answers = iter([False, False, True])
    asked: list[bool] = []

    async def claim() -> bool:
        asked.append(next(answers))
        return asked[-1]

    async with asyncio.timeout(5), slots.slot("a1", "a", claim=claim):
        assert asked == [False, False, True]


async def test_the_place_shown_leaves_out_a_job_that_is_starting() -> None:
    """A job asking the store for its slot (a database round trip) is starting, not waiting:
    the member's next job is first in line, not second (seen as a flaky engine test)."""
    slots = Slots(per_user=1, total=5)
    asking, answer, placed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    places: list[int] = []

    async def claim() -> bool:
        asking.set()
        await answer.wait()
        return True

    async def told(place: int) -> None:
        places.append(place)
        placed.set()

    async def second() -> None:
        async with slots.slot("a2", "a", on_wait=told, claim=claim):
            pass

    async with asyncio.timeout(5):
        first = asyncio.create_task(_run_once(slots, "a1", claim))
        await asking.wait()
        waiting = asyncio.create_task(second())
        await placed.wait()
        assert places == [1]
        answer.set()
        await asyncio.gather(first, waiting)


async def _run_once(slots: Slots, job: str, claim: Claim) -> None:
    async with slots.slot(job, job[0], claim=claim):
        pass
