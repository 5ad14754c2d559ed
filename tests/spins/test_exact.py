# Physics notation (L) for lattice sizes.
# ruff: noqa: N803, N806

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import integrate, special

from atomlens.spins.exact import (
    heisenberg_chain_energy,
    independent_spins_log_density,
    ising2d_dos_counts,
    ising2d_log_dos,
    ising_enumerate_dos,
    log_dos_thermodynamics,
    single_spin_barrier,
    single_spin_coercivity,
    single_spin_free_energy,
    specific_heat_peak,
)

# --------------------------------------------------------------------------------------------
# 2-D Ising model
# --------------------------------------------------------------------------------------------


def transfer_matrix_counts(L: int) -> dict[int, int]:
    """Exact g(E) of the L x L torus by a row-to-row transfer matrix on integer polynomials.

    Independent of Kaufman's solution: the polynomial variable counts unsatisfied bonds u and
    E = -2N + 2u.
    """
    n_sites = L * L
    rows = (np.arange(2**L)[:, None] >> np.arange(L)) & 1
    horizontal = (rows != np.roll(rows, 1, axis=1)).sum(axis=1)
    vertical = (rows[:, None, :] != rows[None, :, :]).sum(axis=2)
    shift = vertical + horizontal[None, :]  # new unsatisfied bonds for the step s -> s'
    degree = 2 * n_sites + 1
    # poly[start, s, u]: number of partial configurations from row `start` ending in row s
    poly = np.zeros((2**L, 2**L, degree), dtype=np.int64)
    poly[np.arange(2**L), np.arange(2**L), horizontal] = 1
    for _ in range(L - 1):
        new = np.zeros_like(poly)
        for d in range(shift.max() + 1):
            step = (shift == d).astype(np.int64)  # step[s, s']
            new[:, :, d:] += np.einsum("asu,st->atu", poly[:, :, : degree - d], step)
        poly = new
    total = np.zeros(degree, dtype=np.int64)  # close the torus: last row back to the first
    for start in range(2**L):
        for d in range(vertical.max() + 1):
            ends = np.flatnonzero(vertical[:, start] == d)
            total[d:] += poly[start, ends, : degree - d].sum(axis=0)
    return {-2 * n_sites + 2 * u: int(g) for u, g in enumerate(total) if g}


@pytest.mark.parametrize("L", [2, 4])
def test_exact_dos_equals_enumeration(L):
    energies, _, counts = ising_enumerate_dos(L)
    exact = ising2d_dos_counts(L)
    assert list(exact) == energies.tolist()
    assert list(exact.values()) == counts.sum(axis=1).tolist()  # exact integers
    e, ln_g = ising2d_log_dos(L)
    np.testing.assert_array_equal(e, energies)
    np.testing.assert_array_equal(ln_g, np.log(counts.sum(axis=1).astype(float)))
    assert np.array_equal(np.rint(np.exp(ln_g)).astype(np.int64), counts.sum(axis=1))


def test_exact_dos_equals_transfer_matrix_l6():
    assert ising2d_dos_counts(6) == transfer_matrix_counts(6)
    assert transfer_matrix_counts(4) == ising2d_dos_counts(4)


def test_exact_dos_l8_properties():
    L, n = 8, 64
    energies, ln_g = ising2d_log_dos(L)
    counts = ising2d_dos_counts(L)
    assert ln_g[energies == 0][0] == pytest.approx(42.412746, abs=1e-6)
    assert special.logsumexp(ln_g) == pytest.approx(n * math.log(2), rel=1e-13)
    assert sum(counts.values()) == 2**n
    assert counts[-2 * n] == 2 and counts[-2 * n + 8] == 2 * n
    assert -2 * n + 4 not in counts and 2 * n - 4 not in counts
    assert energies[0] == -2 * n and energies[-1] == 2 * n
    assert np.all(np.diff(energies) % 4 == 0)
    assert all(counts[e] == counts[-e] for e in counts)  # exact symmetry g(E) = g(-E)
    t_peak, c_peak = specific_heat_peak(energies, ln_g, n)
    assert t_peak == pytest.approx(2.3620, abs=1e-3)
    assert c_peak == pytest.approx(1.19184, abs=1e-4)


def test_exact_dos_l16_values():
    energies, ln_g = ising2d_log_dos(16)
    assert ln_g[energies == 0][0] == pytest.approx(174.796325, abs=1e-6)
    t_peak, c_peak = specific_heat_peak(energies, ln_g, 256)
    assert t_peak == pytest.approx(2.3175, abs=1e-3)
    assert c_peak == pytest.approx(1.55220, abs=1e-4)


def test_exact_dos_is_cached_and_not_shared():
    _, ln_g = ising2d_log_dos(8)
    ln_g[:] = 0.0  # the caller's copy; the cache must be unaffected
    energies, ln_g = ising2d_log_dos(8)
    assert ln_g[energies == 0][0] == pytest.approx(42.412746, abs=1e-6)


@pytest.mark.parametrize("L", [0, 1, 3, 5, -2])
def test_exact_dos_rejects_odd_or_small_lattices(L):
    with pytest.raises(ValueError, match="even lattice size L >= 2"):
        ising2d_log_dos(L)


def test_enumeration_l4():
    energies, mags, counts = ising_enumerate_dos(4)
    assert counts.sum() == 2**16
    np.testing.assert_array_equal(mags, np.arange(-16, 17, 2))
    np.testing.assert_array_equal(counts, counts[:, ::-1])  # M -> -M
    ground = counts[energies == -32][0]
    assert ground[mags == 16][0] == 1 and ground[mags == -16][0] == 1 and ground.sum() == 2
    assert counts[energies == 32][0][mags == 0][0] == 2  # the two checkerboards
    # one flipped spin: 16 positions, E = -32 + 8, M = +-14
    assert counts[energies == -24][0][mags == 14][0] == 16


def test_enumeration_l3_and_limits():
    energies, _, counts = ising_enumerate_dos(3)
    assert counts.sum() == 2**9
    assert counts[0, 0] == 1 and energies[0] == -18  # all down
    with pytest.raises(ValueError, match="2 <= L <= 5"):
        ising_enumerate_dos(6)


# --------------------------------------------------------------------------------------------
# Thermodynamics from ln g
# --------------------------------------------------------------------------------------------


def test_thermodynamics_match_direct_sums_and_derivatives():
    energies, _, counts = ising_enumerate_dos(4)
    g = counts.sum(axis=1).astype(float)
    e = energies.astype(float)
    temps = np.array([0.5, 1.7, 2.3, 4.0, 50.0])
    out = log_dos_thermodynamics(energies, np.log(g), temps, 16)
    for i, t in enumerate(temps):
        w = g * np.exp(-(e - e.min()) / t)
        z = w.sum()
        u = (w * e).sum() / z
        c = ((w * e**2).sum() / z - u**2) / t**2
        f = -t * (np.log(z) - e.min() / t)
        assert out["energy"][i] == pytest.approx(u / 16, rel=1e-12)
        assert out["specific_heat"][i] == pytest.approx(c / 16, rel=1e-9, abs=1e-14)
        assert out["free_energy"][i] == pytest.approx(f / 16, rel=1e-12)
        assert out["entropy"][i] == pytest.approx((u - f) / (16 * t), rel=1e-9)
    # C = dU/dT, and the high-temperature entropy -> ln 2 per site
    t, dt = 2.2, 1e-5
    up, down = (log_dos_thermodynamics(energies, np.log(g), [t + s], 16) for s in (dt, -dt))
    mid = log_dos_thermodynamics(energies, np.log(g), [t], 16)
    slope = (up["energy"][0] - down["energy"][0]) / (2 * dt)
    assert mid["specific_heat"][0] == pytest.approx(slope, rel=1e-6)
    assert out["entropy"][-1] == pytest.approx(math.log(2), abs=2e-3)


def test_thermodynamics_are_stable_for_huge_ln_g():
    energies, ln_g = ising2d_log_dos(16)  # g up to 10^76, Boltzmann factors up to e^1000
    temps = np.array([0.5, 2.269, 10.0])
    a = log_dos_thermodynamics(energies, ln_g, temps, 256)
    b = log_dos_thermodynamics(energies, ln_g + 5000.0, temps, 256)  # normalisation shift
    for key in ("energy", "specific_heat", "free_energy", "entropy"):
        assert np.all(np.isfinite(a[key]))
    np.testing.assert_allclose(a["energy"], b["energy"], rtol=1e-12)
    np.testing.assert_allclose(a["specific_heat"], b["specific_heat"], rtol=1e-9)
    np.testing.assert_allclose(b["free_energy"] - a["free_energy"], -temps * 5000.0 / 256)
    assert a["energy"][0] == pytest.approx(-2.0, abs=1e-6)  # ground state, 2 bonds per site
    with pytest.raises(ValueError, match="positive"):
        log_dos_thermodynamics(energies, ln_g, [0.0, 1.0], 256)


def test_specific_heat_peak_is_precise():
    energies, ln_g = ising2d_log_dos(8)
    t_peak, c_peak = specific_heat_peak(energies, ln_g, 64)
    grid = np.linspace(t_peak - 1e-3, t_peak + 1e-3, 2001)
    c = log_dos_thermodynamics(energies, ln_g, grid, 64)["specific_heat"]
    assert c.max() <= c_peak + 1e-12
    assert abs(grid[np.argmax(c)] - t_peak) <= 2e-6


# --------------------------------------------------------------------------------------------
# Single anisotropic spin
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h", [0.0, 0.3, 1.0, 2.2, 3.99, 4.0, 5.0])
def test_single_spin_barrier_matches_free_energy_profile(h):
    d = 2.0
    m = np.linspace(-1.0, 1.0, 400_001)
    f = single_spin_free_energy(m, d, -h)  # reversing field: along -z, spin starts at m = +1
    if h < 2 * d:  # m = +1 is a (metastable for h > 0) minimum
        assert f[-1] < f[-2]
    expected = f.max() - f[-1]
    assert single_spin_barrier(d, h) == pytest.approx(expected, abs=1e-9)
    np.testing.assert_allclose(f, -d * m**2 + h * m)


def test_single_spin_sign_convention_and_errors():
    assert single_spin_free_energy(1.0, 1.0, 0.5) < single_spin_free_energy(-1.0, 1.0, 0.5)
    barrier = single_spin_barrier(1.0, np.array([0.0, 1.0, 2.0, 3.0]))
    np.testing.assert_allclose(barrier, [1.0, 0.25, 0.0, 0.0])
    assert isinstance(single_spin_barrier(1.0, 0.5), float)
    with pytest.raises(ValueError, match="magnitude"):
        single_spin_barrier(1.0, -0.1)
    with pytest.raises(ValueError, match="positive"):
        single_spin_barrier(0.0, 0.1)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        single_spin_free_energy(1.5, 1.0)


def test_single_spin_coercivity():
    assert single_spin_coercivity(1.0, 0.01) == pytest.approx((2.0, 1.0))  # sqrt(25*0.01) = 0.5
    assert single_spin_coercivity(3.0, 0.0) == (6.0, 6.0)
    assert single_spin_coercivity(1.0, 0.1) == (2.0, 0.0)  # thermal value clipped at 0
    d, t, c = 5.0, 0.03, 20.0
    h_k, h_c = single_spin_coercivity(d, t, c=c)
    assert h_k == 2 * d
    assert single_spin_barrier(d, h_c) == pytest.approx(c * t)  # barrier c T at h_c
    with pytest.raises(ValueError):
        single_spin_coercivity(1.0, -1.0)


# --------------------------------------------------------------------------------------------
# Independent spins
# --------------------------------------------------------------------------------------------


def single_spin_density(a: float):
    z = integrate.quad(lambda x: math.exp(a * x * x), -1, 1, epsabs=0, epsrel=1e-13)[0]
    return lambda x: math.exp(a * x * x) / z if abs(x) <= 1 else 0.0


def test_independent_spins_one_spin_is_exact():
    d, t = 1.3, 0.4
    edges = np.linspace(-1, 1, 201)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ln_p = independent_spins_log_density(1, d, t, edges)
    offset = ln_p - d * centres**2 / t
    assert np.ptp(offset) < 1e-12
    p1 = single_spin_density(d / t)
    assert ln_p[37] == pytest.approx(math.log(p1(centres[37])), abs=1e-12)
    # an easy-plane spin (D < 0) is normalised too
    ln_p = independent_spins_log_density(1, -2.0, 0.5, edges)
    assert np.sum(np.exp(ln_p) * np.diff(edges)) == pytest.approx(1.0, abs=1e-4)


def test_independent_spins_two_spins_match_direct_integration():
    d, t = 1.5, 0.5
    p1 = single_spin_density(d / t)
    # density at the bin centres: the 2-D integral of p1(m1) p1(m2) delta(M - m1 - m2)
    edges = np.linspace(-2, 2, 33)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ln_p = independent_spins_log_density(2, d, t, edges)
    for x, value in zip(centres, ln_p, strict=True):
        lo, hi = max(-1.0, x - 1), min(1.0, x + 1)
        ref = integrate.quad(lambda y, x=x: p1(y) * p1(x - y), lo, hi, epsrel=1e-13)[0]
        assert value == pytest.approx(math.log(ref), abs=1e-5)
    # bin probabilities: 2-D integration over {lo < m1 + m2 < hi} against sub-binned densities
    coarse = np.linspace(-2, 2, 9)
    fine = np.linspace(-2, 2, 8 * 200 + 1)
    p_fine = np.exp(independent_spins_log_density(2, d, t, fine)) * np.diff(fine)
    for i, (lo, hi) in enumerate(itertools.pairwise(coarse)):
        ref = integrate.dblquad(
            lambda m2, m1: p1(m1) * p1(m2),
            -1,
            1,
            lambda m1, lo=lo: max(-1.0, lo - m1),
            lambda m1, hi=hi: min(1.0, hi - m1),
            epsabs=1e-12,
        )[0]
        assert p_fine[200 * i : 200 * (i + 1)].sum() == pytest.approx(ref, rel=1e-4)


def test_independent_spins_deep_valleys():
    # D/T = 30: p(M) of two spins has peaks at M = 0, +-2 and valleys ~e^-27 deeper at M = +-1,
    # far below what FFT convolution resolves
    a = 30.0
    z = integrate.quad(
        lambda x: math.exp(a * (x * x - 1)), -1, 1, points=[-0.99, 0.99], epsabs=0, epsrel=1e-13
    )[0]
    edges = np.linspace(-2, 2, 41)
    ln_p = independent_spins_log_density(2, 3.0, 0.1, edges)
    assert ln_p.max() - ln_p.min() > 25
    for x, value in zip(0.5 * (edges[1:] + edges[:-1]), ln_p, strict=True):
        lo, hi = max(-1.0, x - 1), min(1.0, x + 1)
        ref = integrate.quad(
            lambda y, x=x: math.exp(a * (y * y - 1) + a * ((x - y) ** 2 - 1)),
            lo,
            hi,
            points=[lo + 1e-3, hi - 1e-3],
            epsabs=0,
            epsrel=1e-12,
            limit=400,
        )[0]
        assert value == pytest.approx(math.log(ref / z**2), abs=1e-5)


def test_independent_spins_uniform_case_is_irwin_hall():
    n = 6
    edges = np.linspace(-n, n, 49)
    ln_p = independent_spins_log_density(n, 0.0, 1.0, edges)
    for x, value in zip(0.5 * (edges[1:] + edges[:-1]), ln_p, strict=True):
        u = (Fraction(x) + n) / 2  # sum of n uniform [0, 1] variables; dM = 2 du
        p = sum((-1) ** k * math.comb(n, k) * (u - k) ** (n - 1) for k in range(int(u) + 1))
        ref = math.log(p / math.factorial(n - 1) / 2)
        assert value == pytest.approx(ref, abs=2e-4 if abs(x) > n - 1 else 1e-7)


def test_independent_spins_density_is_normalised_and_symmetric():
    n, d, t = 5, 1.5, 0.7
    edges = np.linspace(-n, n, 201)
    ln_p = independent_spins_log_density(n, d, t, edges)
    assert np.all(np.isfinite(ln_p))
    assert np.sum(np.exp(ln_p) * np.diff(edges)) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(ln_p, ln_p[::-1], atol=1e-10)
    assert ln_p[0] < ln_p[100]  # the M = +-N corners have no volume
    # bins beyond the support give -inf
    wide = independent_spins_log_density(n, d, t, np.array([-7.0, -6.0, 0.0, 1.0]))
    assert wide[0] == -np.inf and np.all(np.isfinite(wide[1:]))


def test_independent_spins_far_tails_stay_finite():
    n, d, t = 60, 2.0, 0.5  # p(M) spans ~170 e-folds: tails need exponential tilting
    edges = np.linspace(-n, n, 121)
    ln_p = independent_spins_log_density(n, d, t, edges)
    assert np.all(np.isfinite(ln_p))
    assert ln_p.max() - ln_p.min() > 150
    assert np.sum(np.exp(ln_p) * np.diff(edges)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(ln_p, ln_p[::-1], atol=1e-8)
    # Near M = N, with deficits u_i = 1 - m_i summing to eps, p1(1 - u) = p1(1) e^{-2au + au^2}
    # and the simplex volume eps^(N-1) / (N-1)! give
    # ln p = N ln p1(1) + (N-1) ln eps - ln (N-1)! - 2 a eps + 2 a eps^2 / N + ...
    eps, a = 0.5, d / t
    expected = (
        n * math.log(single_spin_density(a)(1.0))
        + (n - 1) * math.log(eps)
        - math.lgamma(n)
        - 2 * a * eps
        + 2 * a * eps**2 / n
    )
    assert ln_p[-1] == pytest.approx(expected, abs=3e-3)


def test_independent_spins_rejects_bad_input():
    with pytest.raises(ValueError, match="increasing"):
        independent_spins_log_density(2, 1.0, 1.0, np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="temperature"):
        independent_spins_log_density(2, 1.0, 0.0, np.linspace(-2, 2, 5))
    with pytest.raises(ValueError, match="n_spins"):
        independent_spins_log_density(0, 1.0, 1.0, np.linspace(-2, 2, 5))


# --------------------------------------------------------------------------------------------
# Heisenberg chain
# --------------------------------------------------------------------------------------------


def test_heisenberg_chain_two_spins_match_integration():
    j, t = 1.7, 0.9
    # s1 . s2 = u is uniform on [-1, 1] for independent random directions
    num = integrate.quad(lambda u: -j * u * math.exp(j * u / t), -1, 1)[0]
    den = integrate.quad(lambda u: math.exp(j * u / t), -1, 1)[0]
    assert heisenberg_chain_energy(2, j, t) == pytest.approx(num / den, rel=1e-12)
    assert heisenberg_chain_energy(7, j, t) == pytest.approx(6 * num / den, rel=1e-12)
    assert heisenberg_chain_energy(2, -j, t) == pytest.approx(num / den, rel=1e-12)


def test_heisenberg_chain_limits():
    n, j = 10, 1.0
    t = np.array([1e4, 1e6])  # x = J/T small: U -> -(N-1) J^2 / (3T)
    np.testing.assert_allclose(heisenberg_chain_energy(n, j, t), -(n - 1) * j**2 / (3 * t))
    # continuous across the switch to the series at x = 1e-3
    below, above = heisenberg_chain_energy(n, j, np.array([1 / 0.999e-3, 1 / 1.001e-3]))
    assert below / above == pytest.approx(0.999 / 1.001, rel=1e-9)
    # low temperature: U -> -(N-1)(J - T)
    assert heisenberg_chain_energy(n, j, 0.01) == pytest.approx(-(n - 1) * (j - 0.01), rel=1e-12)
    assert heisenberg_chain_energy(1, j, 1.0) == 0.0
    with pytest.raises(ValueError, match="positive"):
        heisenberg_chain_energy(n, j, 0.0)
