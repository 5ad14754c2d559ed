"""Numba kernels: spin energies and Wang-Landau / Metropolis sweeps for many walkers at once.

Every sweep kernel takes a stack of walkers and runs them in parallel threads (``prange``,
without the GIL); each walker has its own random stream (:mod:`atomlens.spins.rng`), its own
log density of states over the global bins, and a window of bins it may not leave.

Sampling modes (``mode``):
    0 - energy: weight ``1 / g(E)``;
    1 - magnetisation at fixed temperature: weight ``exp(-E/T) / G_T(M)``;
    2 - joint: weight ``1 / g(E, M)`` with bin ``b = b_E * n_M + b_M``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from atomlens.spins.rng import integer_below, uniform

MODE_ENERGY = 0
MODE_MAGNETISATION = 1
MODE_JOINT = 2


@njit(cache=True, inline="always")
def onsite_energy(sx, sy, sz, anisotropy, ax, ay, az, cf):
    """Uniaxial anisotropy and classical Stevens crystal field of one unit vector."""
    projection = sx * ax + sy * ay + sz * az
    energy = -anisotropy * projection * projection
    if cf[0] != 0.0 or cf[1] != 0.0 or cf[2] != 0.0 or cf[3] != 0.0 or cf[4] != 0.0:
        z2 = sz * sz
        energy += cf[0] * (3.0 * z2 - 1.0)
        energy += cf[1] * ((35.0 * z2 - 30.0) * z2 + 3.0)
        energy += cf[2] * (((231.0 * z2 - 315.0) * z2 + 105.0) * z2 - 5.0)
        x2 = sx * sx
        y2 = sy * sy
        four_phi = x2 * x2 - 6.0 * x2 * y2 + y2 * y2  # s^4 cos 4phi
        energy += cf[3] * four_phi
        energy += cf[4] * (11.0 * z2 - 1.0) * four_phi
    if cf[5] != 0.0 or cf[6] != 0.0:
        z2 = sz * sz
        two_phi = 2.0 * sx * sy  # s^2 sin 2phi
        energy += cf[5] * two_phi
        energy += cf[6] * ((33.0 * z2 - 18.0) * z2 + 1.0) * two_phi
    return energy


@njit(cache=True)
def heisenberg_energy(spins, indptr, indices, jvals, anisotropy, axes, cf):
    """Total energy (without Zeeman) of one Heisenberg configuration, shape (n, 3)."""
    energy = 0.0
    for i in range(spins.shape[0]):
        hx = 0.0
        hy = 0.0
        hz = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            hx += jvals[k] * spins[j, 0]
            hy += jvals[k] * spins[j, 1]
            hz += jvals[k] * spins[j, 2]
        energy -= 0.5 * (spins[i, 0] * hx + spins[i, 1] * hy + spins[i, 2] * hz)
        energy += onsite_energy(
            spins[i, 0],
            spins[i, 1],
            spins[i, 2],
            anisotropy[i],
            axes[i, 0],
            axes[i, 1],
            axes[i, 2],
            cf[i],
        )
    return energy


@njit(cache=True)
def ising_energy(spins, indptr, indices, jvals):
    """Total energy ``-sum_{i<j} J_ij s_i s_j`` of one Ising configuration, shape (n,)."""
    energy = 0.0
    for i in range(spins.shape[0]):
        field = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            field += jvals[k] * spins[indices[k]]
        energy -= 0.5 * spins[i] * field
    return energy


@njit(cache=True, inline="always")
def _clamped_bin(value, lo, width, n):
    """Bin of ``value``; the upper edge itself (e.g. ``M = M_s``) belongs to the last bin."""
    b = int(np.floor((value - lo) / width))
    if b == n and value - lo <= n * width * (1.0 + 1e-12) + 1e-12:
        return n - 1
    if b < 0 or b >= n:
        return -1
    return b


@njit(cache=True, inline="always")
def bin_index(energy, magnet, mode, e_lo, e_width, n_e, m_lo, m_width, n_m):
    """Global bin of a state, or -1 when it lies outside the binned range."""
    be = 0
    if mode in (MODE_ENERGY, MODE_JOINT):
        be = _clamped_bin(energy, e_lo, e_width, n_e)
        if be < 0 or mode == MODE_ENERGY:
            return be
    bm = _clamped_bin(magnet, m_lo, m_width, n_m)
    if bm < 0:
        return -1
    if mode == MODE_MAGNETISATION:
        return bm
    return be * n_m + bm


@njit(cache=True, inline="always")
def position(energy, magnet, mode, e_lo, e_width, m_lo, m_width, bin_now):
    """Position of a state in bin units along the sampled axis (beyond the range too)."""
    if mode == MODE_ENERGY:
        return (energy - e_lo) / e_width
    if mode == MODE_MAGNETISATION:
        return (magnet - m_lo) / m_width
    return float(bin_now)


@njit(cache=True, inline="always")
def _accept_wl(
    state, b_old, b_new, pos_old, pos_new, delta_energy, lng_row, mode, inv_temperature, lo, hi
):
    """Wang-Landau acceptance; a walker outside its window only moves towards it."""
    if b_old < lo or b_old >= hi:  # driving into the window (from anywhere): never move away
        centre = 0.5 * (lo + hi)
        return abs(pos_new - centre) <= abs(pos_old - centre)
    if b_new < lo or b_new >= hi:
        return False
    log_ratio = lng_row[b_old] - lng_row[b_new]
    if mode == MODE_MAGNETISATION:
        log_ratio -= delta_energy * inv_temperature
    return log_ratio >= 0.0 or uniform(state) < np.exp(log_ratio)


@njit(cache=True, inline="always")
def _record_visit(b, lo, hi, one_over_t, t, lnf, lng_row, hist_row):
    """Add ``ln f`` and a histogram count at bin ``b`` if it is inside the window.

    Returns:
        ``ln f`` after the visit (``min(ln f, 1/t)`` in the 1/t stage, ``t`` per window bin).
    """
    if lo <= b < hi:
        if one_over_t:
            lnf = min(lnf, (hi - lo) / t)
        lng_row[b] += lnf
        hist_row[b] += 1
    return lnf


@njit(cache=True, inline="always")
def _unit_vector(state):
    """A uniform random unit vector (Marsaglia 1972: no trigonometric calls)."""
    while True:
        a = 2.0 * uniform(state) - 1.0
        b = 2.0 * uniform(state) - 1.0
        r2 = a * a + b * b
        if r2 < 1.0:
            break
    root = 2.0 * np.sqrt(1.0 - r2)
    return a * root, b * root, 1.0 - 2.0 * r2


@njit(cache=True, inline="always")
def _propose_direction(state, sx, sy, sz, step_size):
    """A new unit vector: uniform on the sphere (30 %), else ``s + step * u`` normalised.

    Both proposals are symmetric: the density of the new direction depends only on its
    angle to the old one.
    """
    ux, uy, uz = _unit_vector(state)
    if step_size <= 0.0 or uniform(state) < 0.3:
        return ux, uy, uz
    nx = sx + step_size * ux
    ny = sy + step_size * uy
    nz = sz + step_size * uz
    norm = np.sqrt(nx * nx + ny * ny + nz * nz)
    return nx / norm, ny / norm, nz / norm


@njit(cache=True, inline="always")
def _heisenberg_trial(state, config, i, indptr, indices, jvals, anisotropy, axes, cf, step_size):
    """A trial direction for spin ``i`` and the energy change it would cause."""
    sx = config[i, 0]
    sy = config[i, 1]
    sz = config[i, 2]
    nx, ny, nz = _propose_direction(state, sx, sy, sz, step_size)
    hx = 0.0
    hy = 0.0
    hz = 0.0
    for k in range(indptr[i], indptr[i + 1]):
        j = indices[k]
        hx += jvals[k] * config[j, 0]
        hy += jvals[k] * config[j, 1]
        hz += jvals[k] * config[j, 2]
    delta = -((nx - sx) * hx + (ny - sy) * hy + (nz - sz) * hz)
    ax = axes[i, 0]
    ay = axes[i, 1]
    az = axes[i, 2]
    delta += onsite_energy(nx, ny, nz, anisotropy[i], ax, ay, az, cf[i])
    delta -= onsite_energy(sx, sy, sz, anisotropy[i], ax, ay, az, cf[i])
    return nx, ny, nz, delta


@njit(parallel=True, nogil=True, cache=True)
def heisenberg_wang_landau(
    spins,
    energy,
    magnet,
    lng,
    hist,
    lnf,
    trials,
    one_over_t,
    window_lo,
    window_hi,
    rng,
    n_steps,
    mode,
    inv_temperature,
    e_lo,
    e_width,
    n_e,
    m_lo,
    m_width,
    n_m,
    indptr,
    indices,
    jvals,
    moments,
    anisotropy,
    axes,
    cf,
    step_size,
):
    """Run ``n_steps`` single-spin Wang-Landau trials for every walker (arrays updated in place).

    Args (grouped; all arrays are updated in place where they are state):
        spins: Configurations, shape (walkers, n, 3).
        energy, magnet: Current energy and ``M = sum mu_i s_i^z`` per walker.
        lng, hist: Log density of states and visit histogram per walker over the global bins.
        lnf: Modification factor per walker; ``one_over_t`` switches a walker to ``lnf = 1/t``.
        trials: Trials done per walker (the ``t`` of the 1/t schedule, times the window bins).
        window_lo, window_hi: Allowed global bins ``[lo, hi)`` per walker.
        rng: Random states, shape (walkers, 4).
        n_steps, mode, inv_temperature: Trials per walker (array), sampling mode, ``1/T``
            for mode 1.
        e_lo, e_width, n_e, m_lo, m_width, n_m: Binning of E and M.
        indptr, indices, jvals, moments, anisotropy, axes, cf: The model (SpinSystem arrays).
        step_size: Size of the small trial step ``s + step * u`` (0: uniform proposals only).
    """
    n_walkers, n_sites, _ = spins.shape
    for w in prange(n_walkers):
        state = rng[w].copy()  # a private copy: neighbouring rows share a cache line
        config = spins[w]
        lo = window_lo[w]
        hi = window_hi[w]
        e_now = energy[w]
        m_now = magnet[w]
        t_now = trials[w]
        lnf_now = lnf[w]
        lng_row = lng[w]
        hist_row = hist[w]
        b_old = bin_index(e_now, m_now, mode, e_lo, e_width, n_e, m_lo, m_width, n_m)
        pos_old = position(e_now, m_now, mode, e_lo, e_width, m_lo, m_width, b_old)
        for _ in range(n_steps[w]):
            i = integer_below(state, n_sites)
            sz = config[i, 2]
            nx, ny, nz, delta = _heisenberg_trial(
                state, config, i, indptr, indices, jvals, anisotropy, axes, cf, step_size
            )
            new_energy = e_now + delta
            new_magnet = m_now + moments[i] * (nz - sz)
            b_new = bin_index(new_energy, new_magnet, mode, e_lo, e_width, n_e, m_lo, m_width, n_m)
            pos_new = position(new_energy, new_magnet, mode, e_lo, e_width, m_lo, m_width, b_new)
            if _accept_wl(
                state, b_old, b_new, pos_old, pos_new, delta, lng_row, mode, inv_temperature, lo, hi
            ):
                config[i, 0] = nx
                config[i, 1] = ny
                config[i, 2] = nz
                e_now = new_energy
                m_now = new_magnet
                b_old = b_new
                pos_old = pos_new
            t_now += 1
            lnf_now = _record_visit(b_old, lo, hi, one_over_t[w], t_now, lnf_now, lng_row, hist_row)
        energy[w] = e_now
        magnet[w] = m_now
        trials[w] = t_now
        lnf[w] = lnf_now
        rng[w, :] = state


@njit(parallel=True, nogil=True, cache=True)
def ising_wang_landau(
    spins,
    energy,
    magnet,
    lng,
    hist,
    lnf,
    trials,
    one_over_t,
    window_lo,
    window_hi,
    rng,
    n_steps,
    mode,
    inv_temperature,
    e_lo,
    e_width,
    n_e,
    m_lo,
    m_width,
    n_m,
    indptr,
    indices,
    jvals,
    moments,
):
    """Single-spin-flip Wang-Landau trials for Ising walkers; spins shape (walkers, n), +-1.

    Arguments as in :func:`heisenberg_wang_landau`; ``M = sum_i mu_i s_i``.
    """
    n_walkers, n_sites = spins.shape
    for w in prange(n_walkers):
        state = rng[w].copy()  # a private copy: neighbouring rows share a cache line
        config = spins[w]
        lo = window_lo[w]
        hi = window_hi[w]
        e_now = energy[w]
        m_now = magnet[w]
        t_now = trials[w]
        lnf_now = lnf[w]
        lng_row = lng[w]
        hist_row = hist[w]
        b_old = bin_index(e_now, m_now, mode, e_lo, e_width, n_e, m_lo, m_width, n_m)
        pos_old = position(e_now, m_now, mode, e_lo, e_width, m_lo, m_width, b_old)
        for _ in range(n_steps[w]):
            i = integer_below(state, n_sites)
            field = 0.0
            for k in range(indptr[i], indptr[i + 1]):
                field += jvals[k] * config[indices[k]]
            delta = 2.0 * config[i] * field
            new_energy = e_now + delta
            new_magnet = m_now - 2.0 * moments[i] * config[i]
            b_new = bin_index(new_energy, new_magnet, mode, e_lo, e_width, n_e, m_lo, m_width, n_m)
            pos_new = position(new_energy, new_magnet, mode, e_lo, e_width, m_lo, m_width, b_new)
            if _accept_wl(
                state, b_old, b_new, pos_old, pos_new, delta, lng_row, mode, inv_temperature, lo, hi
            ):
                config[i] = -config[i]
                e_now = new_energy
                m_now = new_magnet
                b_old = b_new
                pos_old = pos_new
            t_now += 1
            lnf_now = _record_visit(b_old, lo, hi, one_over_t[w], t_now, lnf_now, lng_row, hist_row)
        energy[w] = e_now
        magnet[w] = m_now
        trials[w] = t_now
        lnf[w] = lnf_now
        rng[w, :] = state


@njit(parallel=True, nogil=True, cache=True)
def heisenberg_metropolis(
    spins,
    energy,
    magnet,
    rng,
    n_steps,
    inv_temperature,
    field,
    indptr,
    indices,
    jvals,
    moments,
    anisotropy,
    axes,
    cf,
    step_size,
    accepted,
):
    """Metropolis trials at temperature ``1/inv_temperature`` with a field ``field`` along z.

    ``energy`` excludes the Zeeman term; ``accepted`` counts accepted moves per walker.
    """
    n_walkers, n_sites, _ = spins.shape
    for w in prange(n_walkers):
        state = rng[w].copy()  # a private copy: neighbouring rows share a cache line
        config = spins[w]
        e_now = energy[w]
        m_now = magnet[w]
        n_accepted = 0
        for _ in range(n_steps):
            i = integer_below(state, n_sites)
            sz = config[i, 2]
            nx, ny, nz, delta = _heisenberg_trial(
                state, config, i, indptr, indices, jvals, anisotropy, axes, cf, step_size
            )
            delta_magnet = moments[i] * (nz - sz)
            log_ratio = -(delta - field * delta_magnet) * inv_temperature
            if log_ratio >= 0.0 or uniform(state) < np.exp(log_ratio):
                config[i, 0] = nx
                config[i, 1] = ny
                config[i, 2] = nz
                e_now += delta
                m_now += delta_magnet
                n_accepted += 1
        energy[w] = e_now
        magnet[w] = m_now
        accepted[w] += n_accepted
        rng[w, :] = state
