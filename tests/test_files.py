"""lrdm.files.exclusive_lock, the one file lock: a second holder fails at once, or with ``wait`` queues."""

from __future__ import annotations

import threading

import pytest

from lrdm.errors import RunLockedError
from lrdm.files import exclusive_lock

WAIT_SECONDS = 10


def test_a_second_holder_fails_at_once_naming_the_resource(tmp_path):
    lock = tmp_path / ".lock"
    with exclusive_lock(lock, "raw folder x"):
        with pytest.raises(RunLockedError, match=r"raw folder x is in use by another process \(PID \d+"):
            with exclusive_lock(lock, "raw folder x"):
                pass


def test_wait_queues_behind_the_holder_and_then_holds(tmp_path):
    lock = tmp_path / "sub" / ".lock"
    order: list[str] = []
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with exclusive_lock(lock, "raw folder x"):
            held.set()
            release.wait(WAIT_SECONDS)
            order.append("first released")

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(WAIT_SECONDS)
    release.set()
    with exclusive_lock(lock, "raw folder x", wait=True):
        order.append("second held")
    thread.join(WAIT_SECONDS)
    assert order == ["first released", "second held"]
