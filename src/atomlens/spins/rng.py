"""A small counter-free random generator (xoshiro256**) that numba kernels carry per walker.

Each walker owns four ``uint64`` words of state, so a run gives the same numbers whatever the
number of threads or MPI ranks: a walker's stream depends only on the seed and its index.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

_MASK = (1 << 64) - 1


def _splitmix64(value: int) -> tuple[int, int]:
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    z = value
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return value, z ^ (z >> 31)


def seed_states(seed: int, n_streams: int, offset: int = 0) -> np.ndarray:
    """Independent generator states for streams ``offset .. offset + n_streams - 1``.

    Returns:
        Array of shape (n_streams, 4), dtype uint64.
    """
    states = np.empty((n_streams, 4), dtype=np.uint64)
    for k in range(n_streams):
        value = (int(seed) * 0x100000001B3 + (offset + k) * 0xD1B54A32D192ED03) & _MASK
        for word in range(4):
            value, out = _splitmix64(value)
            states[k, word] = out
    return states


@njit(inline="always")
def _rotl(x, k):
    return (x << uint64(k)) | (x >> uint64(64 - k))


@njit(inline="always")
def next_uint64(state):
    """Advance one stream (a length-4 uint64 view) and return 64 random bits."""
    result = _rotl(state[1] * uint64(5), 7) * uint64(9)
    t = state[1] << uint64(17)
    state[2] ^= state[0]
    state[3] ^= state[1]
    state[1] ^= state[2]
    state[0] ^= state[3]
    state[2] ^= t
    state[3] = _rotl(state[3], 45)
    return result


@njit(inline="always")
def uniform(state):
    """A float in [0, 1) with 53 random bits."""
    return float(next_uint64(state) >> uint64(11)) * (1.0 / 9007199254740992.0)


@njit(inline="always")
def integer_below(state, n):
    """An integer in [0, n)."""
    return int(uniform(state) * n)


@njit(inline="always")
def normal(state):
    """A standard normal number (Box-Muller, one of the pair)."""
    u1 = 1.0 - uniform(state)
    u2 = uniform(state)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
