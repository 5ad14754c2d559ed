"""Where replicas run: one process (threads) or several MPI ranks, behind one small interface.

The REWL driver only needs ``rank``, ``size``, ``allgather`` and ``allreduce_all``; windows are
split into contiguous blocks, one block per rank, and each rank runs its walkers in numba
threads. Start an MPI run with ``mpiexec -n 4 atomlens coercivity CONFIG --mpi``.
"""

from __future__ import annotations

from typing import Any, Protocol

from atomlens.errors import AtomlensError


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
