"""Worker processes of a parallel graph build exit quietly with their parent (issue 15, 12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the workers"
)

# two workers each sleep far longer than the test: only a signal can end them
SCRIPT = """
import sys, time
from atomlens.datasets.cache import _run_tasks

if __name__ == "__main__":
    try:
        for _ in _run_tasks(iter([600.0] * 4), 2, function=time.sleep):
            pass
    except KeyboardInterrupt:
        print("parent interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
"""


def _stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, session, ..."""
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def _session(sid: int) -> list[int]:
    """Pids of the live (not zombie) processes of session ``sid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(int(entry.name))
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _workers(sid: int) -> list[int]:
    """The pool workers: children of the fork server (or of the parent, with spawn)."""
    pids = _session(sid)
    children = [p for p in pids if int(_stat(p)[1]) == sid]
    servers = {p for p in children if b"forkserver" in Path(f"/proc/{p}/cmdline").read_bytes()}
    if servers:
        return [p for p in pids if int(_stat(p)[1]) in servers]
    return [
        p for p in children if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()
    ]


def _ignores_sigint(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(
        next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16
    )
    return bool(mask & (1 << (signal.SIGINT - 1)))


def _start() -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    # both workers running their task, after their set-up (which ignores SIGINT)
    while True:
        try:
            workers = _workers(process.pid)
            if len(workers) == 2 and all(_ignores_sigint(p) for p in workers):
                break
        except (OSError, StopIteration):
            pass  # a process went away while we looked
        if time.monotonic() > deadline or process.poll() is not None:
            for pid in _session(process.pid):
                os.kill(pid, signal.SIGKILL)
            pytest.fail(f"no two workers that ignore SIGINT: {process.communicate()[1]}")
        time.sleep(0.1)
    return process


def _wait_until_gone(sid: int, seconds: float = 15.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _session(sid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:  # clean up whatever a failing run left behind
        os.kill(pid, signal.SIGKILL)
    return left


def test_ctrl_c_stops_parent_and_workers_without_tracebacks():
    process = _start()
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = process.communicate(timeout=30)
    left = _wait_until_gone(process.pid)
    assert process.returncode == 130, err
    assert "parent interrupted" in err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert not left, f"workers outlived the parent: {left}"


def test_workers_exit_when_the_parent_is_killed():
    process = _start()
    os.kill(process.pid, signal.SIGKILL)
    _, err = process.communicate(timeout=30)
    left = _wait_until_gone(process.pid)
    assert not left, f"workers outlived the parent: {left}"
    assert "Traceback" not in err, err
