"""The bot fixes glibc's mmap threshold at start-up (bot/memory.py): where the C library is
glibc, as on the project's machines and its Docker image, the call must take effect. And the
garbage collector looks at new objects less often once the core is open (bot/collector.py)."""

import gc
import platform

import pytest

from bot.app import open_core
from bot.collector import YOUNG
from bot.config import Settings
from bot.memory import return_large_buffers


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only: elsewhere a no-op")
def test_large_buffers_are_returned_to_the_system_on_glibc() -> None:
    assert return_large_buffers() is True


async def test_the_open_core_collects_young_objects_less_often(settings: Settings) -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])
    try:
        async with open_core(settings):
            assert gc.get_threshold() == (YOUNG, *before[1:])
    finally:
        gc.set_threshold(*before)
