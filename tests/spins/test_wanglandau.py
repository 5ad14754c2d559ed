"""Wang-Landau and REWL against exact results: Beale's 2-D Ising, enumeration, single spins."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp

from atomlens.spins import kernels
from atomlens.spins.exact import (
    heisenberg_chain_energy,
    independent_spins_log_density,
    ising2d_log_dos,
    ising_enumerate_dos,
    specific_heat_peak,
)
from atomlens.spins.lattice import heisenberg_chain, ising_square, simple_cubic_grain
from atomlens.spins.rng import seed_states
from atomlens.spins.system import STEVENS_TERMS, SpinModelError, SpinSystem
from atomlens.spins.wanglandau import (
    Binning,
    ReplicaExchangeWangLandau,
    WangLandauSettings,
    join_windows,
    window_bounds,
)


def independent_spins(n: int, anisotropy: float) -> SpinSystem:
    """``n`` uncoupled unit spins with uniaxial anisotropy ``D`` along z."""
    return SpinSystem(
        positions=np.zeros((n, 3)),
        site_types=np.zeros(n, dtype=int),
        type_names=("spin",),
        moments=np.ones(n),
        exchange_indptr=np.zeros(n + 1, dtype=int),
        exchange_indices=np.zeros(0, dtype=int),
        exchange_values=np.zeros(0),
        anisotropy=np.full(n, anisotropy),
        anisotropy_axes=np.tile([0.0, 0.0, 1.0], (n, 1)),
        crystal_field=np.zeros((n, len(STEVENS_TERMS))),
    )


def normalised_ising(result, n_sites: int) -> tuple[np.ndarray, np.ndarray]:
    """Visited energies and ln g normalised by the sum rule sum g = 2^N."""
    visited = result.visited
    ln_g = result.log_dos[visited]
    ln_g = ln_g - logsumexp(ln_g) + n_sites * np.log(2)
    return result.binning.energy_centres[visited], ln_g


def beale_error(result, size: int) -> float:
    """Mean relative error of ln g against the exact result, over the exact levels."""
    energies, ln_g = normalised_ising(result, size * size)
    exact_e, exact_lng = ising2d_log_dos(size)
    np.testing.assert_array_equal(energies, exact_e)  # exactly the reachable levels
    return float(np.mean(np.abs(ln_g - exact_lng) / exact_lng.clip(min=np.log(2))))


def run(system, binning, **settings):
    settings.setdefault("threads", 2)
    return ReplicaExchangeWangLandau(system, binning, WangLandauSettings(**settings)).run(
        progress=False
    )


def test_ising_l8_plain_wang_landau_matches_beale():
    system = ising_square(8)
    result = run(system, Binning.ising_energy(system), lnf_final=1e-6, seed=1)
    assert beale_error(result, 8) < 5e-3
    energies, ln_g = normalised_ising(result, 64)
    t_peak, _ = specific_heat_peak(energies, ln_g, 64)
    assert abs(t_peak - 2.3620) < 0.02
    # the impossible level E = -2N + 4 was never visited and is masked, not guessed
    assert np.isnan(result.log_dos[1])


def test_ising_l8_rewl_matches_beale_across_joins():
    system = ising_square(8)
    result = run(
        system,
        Binning.ising_energy(system),
        windows=3,
        walkers_per_window=2,
        lnf_final=1e-6,
        seed=2,
    )
    assert len(result.joins) == 2
    assert 0.05 < result.exchange_acceptance <= 1.0
    assert beale_error(result, 8) < 5e-3
    t_peak, _ = specific_heat_peak(*normalised_ising(result, 64), 64)
    assert abs(t_peak - 2.3620) < 0.02


@pytest.mark.slow
def test_ising_l16_rewl_matches_beale():
    system = ising_square(16)
    result = run(
        system,
        Binning.ising_energy(system),
        windows=4,
        walkers_per_window=2,
        lnf_final=1e-6,
        seed=3,
    )
    assert beale_error(result, 16) < 5e-3
    t_peak, _ = specific_heat_peak(*normalised_ising(result, 256), 256)
    assert abs(t_peak - 2.3175) < 0.02


def test_joint_density_of_states_matches_enumerated_4x4():
    system = ising_square(4)
    binning = Binning.ising_joint(system)
    result = run(system, binning, lnf_final=1e-5, walkers_per_window=2, seed=4)
    energies, magnetisations, counts = ising_enumerate_dos(4)
    exact = np.full((binning.n_e, binning.n_m), np.nan)
    e_index = np.round((energies - binning.e_lo - binning.e_width / 2) / binning.e_width)
    m_index = np.round((magnetisations - binning.m_lo - binning.m_width / 2) / binning.m_width)
    for a, ei in enumerate(e_index.astype(int)):
        for b, mi in enumerate(m_index.astype(int)):
            if counts[a, b] > 0:
                exact[ei, mi] = np.log(counts[a, b])
    estimate = result.log_dos.reshape(binning.n_e, binning.n_m)
    # exactly the reachable (E, M) pairs are visited
    np.testing.assert_array_equal(np.isfinite(estimate), np.isfinite(exact))
    finite = np.isfinite(exact)
    estimate = estimate[finite] - logsumexp(estimate[finite]) + 16 * np.log(2)
    assert np.max(np.abs(estimate - exact[finite])) < 0.05


def test_single_spin_free_energy_is_exact_across_window_joins():
    temperature, anisotropy = 0.5, 1.0
    system = independent_spins(1, anisotropy)
    binning = Binning.magnetisation(system, temperature, 40)
    result = run(system, binning, windows=3, walkers_per_window=2, lnf_final=1e-5, seed=5)
    edges = np.linspace(-1, 1, 41)
    fine = np.linspace(-1, 1, 40 * 200 + 1)
    weights = np.exp(anisotropy * fine**2 / temperature)
    per_bin = np.add.reduceat(weights[:-1] * np.diff(fine), np.arange(0, 40 * 200, 200))
    exact = -temperature * np.log(per_bin)
    exact -= exact.min()
    assert np.allclose(edges[:-1] + 0.025, binning.centres)
    assert np.max(np.abs(result.free_energy() - exact)) < 0.01


def test_independent_spins_free_energy_matches_convolution():
    n, temperature, anisotropy = 3, 0.4, 0.5
    system = independent_spins(n, anisotropy)
    binning = Binning.magnetisation(system, temperature, 30)
    result = run(system, binning, windows=2, walkers_per_window=2, lnf_final=1e-6, seed=6)
    edges = np.linspace(-n, n, 31)
    exact = -temperature * independent_spins_log_density(n, anisotropy, temperature, edges)
    exact -= np.nanmin(exact)
    free = result.free_energy()
    both = np.isfinite(exact) & np.isfinite(free)
    assert both.sum() >= 26
    # the bins next to M = +-3 hold a tiny phase-space volume; compare the bulk of the range
    inner = both & (np.abs(binning.centres) < 2.5)
    assert np.max(np.abs(free[inner] - exact[inner])) < 0.03


def test_one_over_t_never_starts_before_a_halving_stage():
    system = ising_square(4)
    result = run(system, Binning.ising_energy(system), lnf_final=1e-5, seed=7)
    stages = [event["stage"] for event in result.history]
    assert stages[0] == "halve" and result.history[0]["lnf"] == 0.5
    switch = stages.index("1/t")
    assert all(stage == "halve" for stage in stages[:switch])
    event = result.history[switch]
    # the switch happens only once a halved ln f falls below 1/t, never at t ~ 0
    assert event["lnf"] <= 1.0 / event["t"] + 1e-12
    assert result.history[switch - 1]["lnf"] > 1.0 / event["t"]
    assert event["t"] > 100


def test_one_over_t_can_be_switched_off():
    system = ising_square(4)
    result = run(system, Binning.ising_energy(system), lnf_final=1e-3, one_over_t=False, seed=7)
    assert {event["stage"] for event in result.history} <= {"halve", "done"}


def test_same_seed_same_result_whatever_the_thread_count():
    system = ising_square(4)
    binning = Binning.ising_energy(system)
    settings = {"windows": 2, "walkers_per_window": 2, "lnf_final": 1e-3, "seed": 11}
    one = run(system, binning, threads=1, **settings)
    two = run(system, binning, threads=2, **settings)
    np.testing.assert_array_equal(one.window_log_dos, two.window_log_dos)
    other = run(system, binning, threads=2, **{**settings, "seed": 12})
    assert not np.array_equal(np.nan_to_num(one.log_dos), np.nan_to_num(other.log_dos))


def test_interrupted_run_resumes_to_the_identical_result(tmp_path):
    system = ising_square(4)
    binning = Binning.ising_energy(system)
    settings = WangLandauSettings(windows=2, walkers_per_window=2, lnf_final=1e-4, seed=5)
    reference = ReplicaExchangeWangLandau(system, binning, settings).run(progress=False)
    limited = WangLandauSettings(**{**settings.__dict__, "max_seconds": 1e-9})
    stopped = ReplicaExchangeWangLandau(system, binning, limited, checkpoint=tmp_path)
    assert stopped.run(progress=False) is None  # stops after its first chunk
    assert (tmp_path / "rewl_rank0.npz").exists()
    resumed = ReplicaExchangeWangLandau(system, binning, settings, checkpoint=tmp_path)
    result = resumed.run(progress=False)
    np.testing.assert_array_equal(result.log_dos, reference.log_dos)
    # a checkpoint of another model is refused, not silently reused
    other = ReplicaExchangeWangLandau(ising_square(3), Binning.ising_energy(ising_square(3)),
                                      settings, checkpoint=tmp_path)  # fmt: skip
    with pytest.raises(SpinModelError, match="different model"):
        other.run(progress=False)


@pytest.mark.skipif(shutil.which("mpiexec") is None and not Path(sys.executable).with_name(
    "mpiexec").exists(), reason="no mpiexec")  # fmt: skip
def test_mpi_ranks_give_the_same_result_as_threads(tmp_path):
    pytest.importorskip("mpi4py")
    script = tmp_path / "rewl_mpi.py"
    script.write_text(
        "import sys, numpy as np\n"
        "from atomlens.spins.lattice import ising_square\n"
        "from atomlens.spins.parallel import get_communicator\n"
        "from atomlens.spins.wanglandau import *\n"
        "system = ising_square(4)\n"
        "settings = WangLandauSettings(windows=2, walkers_per_window=2, lnf_final=1e-4, seed=9)\n"
        "comm = get_communicator(True)\n"
        "r = ReplicaExchangeWangLandau(system, Binning.ising_energy(system), settings, comm=comm)\n"
        "result = r.run(progress=False)\n"
        "if comm.rank == 0: np.save(sys.argv[1], result.log_dos)\n"
    )
    mpiexec = Path(sys.executable).with_name("mpiexec")
    command = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", "2", sys.executable]
    out = tmp_path / "mpi.npy"
    subprocess.run([*command, str(script), str(out)], check=True, timeout=300)
    system = ising_square(4)
    settings = WangLandauSettings(windows=2, walkers_per_window=2, lnf_final=1e-4, seed=9)
    local = ReplicaExchangeWangLandau(system, Binning.ising_energy(system), settings)
    np.testing.assert_array_equal(np.load(out), local.run(progress=False).log_dos)


def test_window_layout_and_join():
    bounds = window_bounds(100, 4, 0.75)
    assert bounds[0][0] == 0 and bounds[-1][1] == 100
    for (lo_a, hi_a), (lo_b, hi_b) in itertools.pairwise(bounds):
        assert lo_a < lo_b < hi_a < hi_b
        assert (hi_a - lo_b) / (hi_a - lo_a) > 0.6
    with pytest.raises(SpinModelError, match="overlap"):
        window_bounds(6, 5, 0.1)
    x = np.arange(20.0)
    truth = 0.05 * x**2
    left = np.where(x < 12, truth + 3.0, np.nan)
    right = np.where(x >= 6, truth - 7.0, np.nan)
    joined, joins = join_windows(np.array([left, right]))
    np.testing.assert_allclose(joined - joined[0], truth - truth[0])
    assert 6 <= joins[0] < 11
    with pytest.raises(SpinModelError, match="share no"):
        join_windows(np.array([np.where(x < 5, x, np.nan), np.where(x > 10, x, np.nan)]))


def test_metropolis_heisenberg_chain_energy_matches_exact():
    n, temperature = 8, 0.7
    system = heisenberg_chain(n)
    walkers = 4
    spins = np.zeros((walkers, n, 3))
    spins[:, :, 2] = 1.0
    energy = np.array([_energy(system, s) for s in spins])
    magnet = spins[:, :, 2].sum(axis=1)
    rng = seed_states(3, walkers)
    accepted = np.zeros(walkers, dtype=np.int64)
    args = system.kernel_arrays()
    kernels.heisenberg_metropolis(spins, energy, magnet, rng, 20_000, 1 / temperature, 0.0,
                                  *args, 0.8, accepted)  # fmt: skip
    samples = []
    for _ in range(400):
        kernels.heisenberg_metropolis(spins, energy, magnet, rng, 200, 1 / temperature, 0.0,
                                      *args, 0.8, accepted)  # fmt: skip
        samples.append(energy.copy())
    # the running energy equals a fresh evaluation (the kernel's local energy change is exact)
    np.testing.assert_allclose(energy, [_energy(system, s) for s in spins], atol=1e-9)
    mean = np.mean(samples)
    error = np.std(np.mean(samples, axis=0)) / np.sqrt(walkers) + 0.02
    assert abs(mean - heisenberg_chain_energy(n, 1.0, temperature)) < 4 * error


def test_heisenberg_energy_kernel_matches_numpy():
    system = simple_cubic_grain(3, J=1.3, D=0.2)
    rng = np.random.default_rng(0)
    system.crystal_field[:] = rng.normal(size=system.crystal_field.shape)
    spins = rng.normal(size=(system.n_sites, 3))
    spins /= np.linalg.norm(spins, axis=1, keepdims=True)
    rows = np.repeat(np.arange(system.n_sites), np.diff(system.exchange_indptr))
    exchange = -0.5 * np.sum(
        system.exchange_values * np.sum(spins[rows] * spins[system.exchange_indices], axis=1)
    )
    x, y, z = spins.T
    stevens = np.column_stack([
        3 * z**2 - 1,
        35 * z**4 - 30 * z**2 + 3,
        231 * z**6 - 315 * z**4 + 105 * z**2 - 5,
        np.real((x + 1j * y) ** 4),
        (11 * z**2 - 1) * np.real((x + 1j * y) ** 4),
        np.imag((x + 1j * y) ** 2),
        (33 * z**4 - 18 * z**2 + 1) * np.imag((x + 1j * y) ** 2),
    ])  # fmt: skip
    onsite = -system.anisotropy * z**2 + np.sum(system.crystal_field * stevens, axis=1)
    assert np.isclose(_energy(system, spins), exchange + onsite.sum())


def test_bad_settings_are_refused():
    with pytest.raises(SpinModelError, match="overlap"):
        WangLandauSettings(overlap=1.5)
    with pytest.raises(SpinModelError, match="positive temperature"):
        Binning("magnetisation", n_m=10)
    system = ising_square(4)
    with pytest.raises(SpinModelError, match="one window"):
        ReplicaExchangeWangLandau(
            system, Binning.ising_joint(system), WangLandauSettings(windows=2)
        )


def _energy(system: SpinSystem, spins: np.ndarray) -> float:
    return kernels.heisenberg_energy(
        spins,
        system.exchange_indptr,
        system.exchange_indices,
        system.exchange_values,
        system.anisotropy,
        system.anisotropy_axes,
        system.crystal_field,
    )


def test_walkers_starting_outside_the_binned_range_drive_into_their_windows():
    # all walkers start saturated (M = 3), above the range |M| <= 0.9 M_s; the lowest window
    # lies at the far end, so the drive has to cross the whole range (this once deadlocked)
    system = independent_spins(3, 0.5)
    binning = Binning.magnetisation(system, 0.5, 24, m_max=0.9)
    result = run(system, binning, windows=2, walkers_per_window=1, lnf_final=1e-5, seed=8)
    assert result.visited.all()
    edges = np.linspace(-2.7, 2.7, 25)
    exact = -0.5 * independent_spins_log_density(3, 0.5, 0.5, edges)
    difference = result.free_energy() - exact
    assert np.max(np.abs(difference - difference.mean())) < 0.05


def test_magnetisation_range_covers_the_equilibrium_magnetisation():
    from atomlens.spins.workflow import magnetisation_range

    grain = simple_cubic_grain(4, D=0.2)
    cold, warm = magnetisation_range(grain, 0.1), magnetisation_range(grain, 1.0)
    assert 0.95 < cold <= 1.0
    assert warm < cold  # a hot grain is far from saturation
    with pytest.raises(SpinModelError, match="m_max"):
        Binning.magnetisation(grain, 0.5, 20, m_max=1.5)
