"""Exclusive OS file locks, so two processes never write the same run or cache entry.

The lock is an advisory ``flock`` on a small lock file (through the ``filelock`` package):
the operating system releases it when its process dies, so a killed run never leaves a
stale lock behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from atomlens.errors import DataError

log = logging.getLogger(__name__)


@contextmanager
def exclusive(lock_file: Path | str, what: str, *, wait: bool) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` for the block.

    Args:
        lock_file: The lock file (created with its folder if missing).
        what: What the lock protects, for messages (e.g. ``run directory 'runs/x'``).
        wait: Wait for the other process to finish (True) or refuse at once (False).

    Raises:
        DataError: When ``wait`` is False and another process holds the lock.
    """
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise DataError(
                f"{what} is in use by another atomlens process (lock '{lock_file}'); "
                "wait for it to finish or choose another folder"
            ) from None
        log.info("waiting for another atomlens process to finish with %s", what)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
