"""The bot fixes glibc's mmap threshold at start-up (bot/memory.py): where the C library is
glibc, as on the project's machines and its Docker image, the call must take effect."""

import platform

import pytest

from bot.memory import return_large_buffers


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only: elsewhere a no-op")
def test_large_buffers_are_returned_to_the_system_on_glibc() -> None:
    assert return_large_buffers() is True
