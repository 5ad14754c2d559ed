"""Where replicas run: one process (threads) or several MPI ranks, behind one small interface.

The REWL driver only needs ``rank``, ``size``, ``allgather`` and ``allreduce_all``; windows are
split into contiguous blocks, one block per rank, and each rank runs its walkers in numba
threads. Start an MPI run with ``mpiexec -n 4 atomlens coercivity CONFIG --mpi``.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from atomlens.errors import AtomlensError

#: Wait policy of numba's OpenMP threads unless ``OMP_WAIT_POLICY`` is set by the user.
DEFAULT_WAIT_POLICY = "PASSIVE"


def start_threads() -> str:
    """Start numba's thread pool with idle threads that sleep instead of spinning.

    The Wang-Landau driver calls a parallel kernel every few milliseconds and runs Python
    in between; OpenMP's default policy keeps the idle worker spinning through those gaps,
    which on busy cores takes CPU time from the main thread and made 2 threads slower than 1.
    libgomp reads ``OMP_WAIT_POLICY`` once, when it loads, so the policy is set just while
    numba loads its threading layer and then removed again (other OpenMP libraries loaded
    later, e.g. torch's, keep their defaults). A policy the user set is respected; once the
    threads run this changes nothing.

    Returns:
        The wait policy in force for a pool started by this call (the user's, or passive).
    """
    import numba

    user = os.environ.get("OMP_WAIT_POLICY")
    if user is not None:
        numba.get_num_threads()  # starts the threads (if not running yet)
        return user
    os.environ["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY
    try:
        numba.get_num_threads()
    finally:
        del os.environ["OMP_WAIT_POLICY"]
    return DEFAULT_WAIT_POLICY


class Communicator(Protocol):
    """The collective operations the replica-exchange driver uses."""

    rank: int
    size: int

    def allgather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        ...

    def allreduce_all(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on every rank."""
        ...


class LocalCommunicator:
    """A single process: all windows are local; parallelism comes from threads."""

    rank = 0
    size = 1

    def allgather(self, value: Any) -> list[Any]:
        """Return ``[value]``."""
        return [value]

    def allreduce_all(self, flag: bool) -> bool:
        """Return ``flag``."""
        return bool(flag)


class MPICommunicator:
    """MPI ranks through mpi4py (the ``mpi`` extra installs mpi4py and the mpich wheel)."""

    def __init__(self) -> None:
        try:
            from mpi4py import MPI
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise AtomlensError(
                "MPI runs need mpi4py: pip install 'atomlens[mpi]' (mpi4py and the mpich wheel)"
            ) from exc
        self._comm = MPI.COMM_WORLD
        self._mpi = MPI
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()

    def allgather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order."""
        return self._comm.allgather(value)

    def allreduce_all(self, flag: bool) -> bool:
        """Logical and over ranks."""
        return bool(self._comm.allreduce(bool(flag), op=self._mpi.LAND))


def window_owner(window: int, n_windows: int, size: int) -> int:
    """The rank owning ``window`` when windows are split into contiguous blocks."""
    return window * size // n_windows


def get_communicator(use_mpi: bool) -> Communicator:
    """An MPI communicator when asked for (and more than one rank runs), else a local one."""
    if not use_mpi:
        return LocalCommunicator()
    comm = MPICommunicator()
    return comm if comm.size > 1 else LocalCommunicator()
