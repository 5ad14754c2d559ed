import json

import ase
import ase.io
import numpy as np
import pytest

from atomlens.diffusion.arrhenius import fit_arrhenius, format_factor
from atomlens.diffusion.msd import (
    Trajectory,
    diffusivity,
    msd_fft,
    read_trajectory,
    unwrap,
)
from atomlens.errors import DataError
from atomlens.units import KB_EV

CELL = np.eye(3) * 15.0


def random_walk(d_cm2_s=1e-5, n_li=128, n_frames=2000, dt_fs=100.0, drift=0.0, seed=0):
    """Li random walkers with diffusivity D in a framework of O atoms that may drift.

    Returns wrapped positions, as MD codes write them.
    """
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(2 * d_cm2_s * 10.0 * dt_fs)  # cm2/s -> A2/fs is x10; per-axis variance 2 D dt
    li = rng.uniform(0, 15, (n_li, 3)) + np.cumsum(rng.normal(0, sigma, (n_frames, n_li, 3)), 0)
    o_sites = rng.uniform(0, 15, (n_li, 3))
    o = o_sites + rng.normal(0, 0.05, (n_frames, n_li, 3))
    shift = drift * dt_fs * np.arange(n_frames)[:, None, None] * np.array([1.0, 0.5, 0.0])
    positions = np.concatenate([li, o], axis=1) + shift
    frac = positions @ np.linalg.inv(CELL)
    wrapped = (frac - np.floor(frac)) @ CELL
    numbers = np.array([3] * n_li + [8] * n_li)
    return Trajectory(wrapped, CELL, numbers, dt_fs)


def test_fft_msd_equals_the_direct_average_over_origins():
    x = np.cumsum(np.random.default_rng(1).normal(size=(300, 5, 3)), axis=0)
    direct = np.array([np.mean((x[m:] - x[: len(x) - m]) ** 2, axis=0) for m in range(300)])
    np.testing.assert_allclose(msd_fft(x), direct, atol=1e-9)


def test_unwrap_undoes_boundary_jumps():
    walk = np.cumsum(np.random.default_rng(2).normal(0, 0.5, (200, 3, 3)), axis=0)
    frac = walk @ np.linalg.inv(CELL)
    wrapped = (frac - np.floor(frac)) @ CELL
    np.testing.assert_allclose(
        unwrap(wrapped, CELL) - unwrap(wrapped, CELL)[0], walk - walk[0], atol=1e-9
    )


@pytest.mark.parametrize("drift", [0.0, 0.002])
def test_random_walk_recovers_known_diffusivity(drift):
    result = diffusivity(random_walk(drift=drift), "Li", 1000.0)
    assert result.diffusivity == pytest.approx(1e-5, rel=0.05)
    np.testing.assert_allclose(result.diffusivity_axes, 1e-5, rtol=0.2)  # fewer samples
    assert result.diffusivity_axes.mean() == pytest.approx(result.diffusivity, rel=1e-9)
    assert 0 < result.diffusivity_std < 0.2e-5
    # Nernst-Einstein: n e^2 D / (kB T) with n = 128 Li in (15 A)^3
    n = 128 / (15e-8) ** 3
    expected = n * (1.602176634e-19) ** 2 * result.diffusivity / (1.380649e-23 * 1000.0)
    assert result.conductivity == pytest.approx(expected, rel=1e-9)


def test_drift_is_removed_only_when_asked():
    drifting = random_walk(drift=0.002)
    kept = diffusivity(drifting, "Li", 1000.0, remove_drift=False)
    assert kept.diffusivity > 2e-5  # the drift adds ballistic motion


def test_arrhenius_recovers_activation_energy():
    rng = np.random.default_rng(3)
    temperatures = np.array([1000.0, 1500.0, 2000.0, 2500.0])
    ea, d0 = 0.34, 1e-3
    d = d0 * np.exp(-ea / (KB_EV * temperatures)) * np.exp(rng.normal(0, 0.05, 4))
    fit = fit_arrhenius(temperatures, d, errors=0.05 * d)
    assert fit.activation_energy == pytest.approx(ea, abs=0.03)
    room, ln_error = fit.extrapolate(300.0)
    assert room == pytest.approx(d0 * np.exp(-ea / (KB_EV * 300)), rel=1.0)
    assert ln_error > 0
    with pytest.raises(DataError, match="two different temperatures"):
        fit_arrhenius([1000.0, 1000.0], [1e-5, 2e-5])
    with pytest.raises(DataError, match="positive"):
        fit_arrhenius([1000.0, 2000.0], [1e-5, -1.0])


def test_error_bars_cover_the_known_diffusivity():
    """Issue 15 item 14: over 100 walks with D known, D ± 2 sigma holds D ~95 % of the time.

    The old block error (spread of five blocks fitted on a fifth of the lags) covered
    ~60 % here and its sigma was ~0.6 of the real scatter.
    """
    z, relative, sigmas = [], [], []
    for seed in range(100):
        result = diffusivity(random_walk(n_li=32, n_frames=300, seed=100 + seed), "Li", 1000.0)
        z.append((result.diffusivity - 1e-5) / result.diffusivity_std)
        relative.append(result.diffusivity / 1e-5)
        sigmas.append(result.diffusivity_std / 1e-5)
        assert result.error_dof == 31
    coverage = np.mean(np.abs(z) < 2)
    assert 0.89 <= coverage <= 0.99  # binomial sd 2.2 % at 95 %
    assert np.mean(sigmas) / np.std(relative, ddof=1) == pytest.approx(1.0, abs=0.2)
    # The estimator is unchanged: the mean of per-ion slopes is the slope of the mean MSD.
    lo, hi = np.searchsorted(result.time_ps, result.fit_range_ps)
    window = slice(lo, hi + 1)
    slope = np.polyfit(result.time_ps[window], result.msd[window], 1)[0]
    assert result.diffusivity == pytest.approx(slope / 6 * 1e-4, rel=1e-9)
    assert np.all(result.diffusivity_axes_std > result.diffusivity_std)
    summary = result.summary()
    assert summary["diffusivity_std_dof"] == 31 and len(summary["block_diffusivities_cm2_s"]) == 5
    single = diffusivity(random_walk(n_li=1, n_frames=100), "Li", 1000.0)
    assert np.isnan(single.diffusivity_std) and single.error_dof == 0
    assert (
        json.loads(json.dumps(single.summary(), allow_nan=False))["diffusivity_std_cm2_s"] is None
    )


def synthetic_triplets(n, relative_error, seed, ea=0.3, d0=1e-3):
    """``n`` noisy D triplets at 1000/1500/2000 K with lognormal errors of known size."""
    rng = np.random.default_rng(seed)
    temperatures = np.array([1000.0, 1500.0, 2000.0])
    truth = d0 * np.exp(-ea / (KB_EV * temperatures))
    return temperatures, truth * np.exp(rng.normal(0, relative_error, (n, 3)))


def test_arrhenius_errors_with_three_temperatures_cover_the_truth():
    """Issue 15 item 15: chi2/dof with one dof no longer shrinks sigma_Ea at random."""
    temperatures, samples = synthetic_triplets(400, 0.05, seed=7)
    z, z_input, inside_scatter = [], [], []
    for d in samples:
        fit = fit_arrhenius(temperatures, d, errors=0.05 * d)
        assert fit.error_source == "input errors" and fit.dof == 1 and fit.scale >= 1.0
        # never below what the input errors give (the old fit could be 5x below)
        assert fit.activation_energy_std >= fit.activation_energy_std_input * (1 - 1e-12)
        z.append((fit.activation_energy - 0.3) / fit.activation_energy_std)
        z_input.append((fit.activation_energy - 0.3) / fit.activation_energy_std_input)
        plain = fit_arrhenius(temperatures, d)  # no errors: scatter with one dof
        low, high = plain.summary()["activation_energy_95_eV"]
        inside_scatter.append(low <= 0.3 <= high)
    assert 0.92 <= np.mean(np.abs(z_input) < 2) <= 0.985  # exact input errors: 95.4 %
    assert 0.93 <= np.mean(np.abs(z) < 2) <= 0.995  # scaled up only: a little above
    assert 0.92 <= np.mean(inside_scatter) <= 0.98  # t(0.975, 1) = 12.7 sigma
    assert plain.interval_quantile == pytest.approx(12.706, abs=1e-3)
    # sigma_Ea from the input errors, independent of how well three points line up
    d = samples[0]
    design = np.column_stack([np.ones(3), -1.0 / (KB_EV * temperatures)]) / 0.05
    expected = np.sqrt(np.linalg.inv(design.T @ design)[1, 1])
    assert fit_arrhenius(temperatures, d, 0.05 * d).activation_energy_std_input == pytest.approx(
        expected, rel=1e-9
    )
    two = fit_arrhenius(temperatures[:2], d[:2])
    assert np.isnan(two.activation_energy_std)  # no scatter to estimate from two points
    assert (
        json.loads(json.dumps(two.summary(300.0), allow_nan=False))["activation_energy_std_eV"]
        is None
    )


def test_extrapolation_factor_prints_enough_digits():
    assert format_factor(0.004) == "1.0040"  # the old ".2g" printed "1"
    assert format_factor(0.26) == "1.30" and format_factor(2.0) == "7.39"
    assert format_factor(float("nan")) == "nan"


def test_langevin_free_particles_give_kt_over_m_gamma(tmp_path):
    from ase.calculators.calculator import Calculator, all_changes
    from ase.md.langevin import Langevin
    from ase.units import fs

    class Free(Calculator):
        implemented_properties = ("energy", "forces")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results = {"energy": 0.0, "forces": np.zeros((len(atoms), 3))}

    rng = np.random.default_rng(4)
    atoms = ase.Atoms("Li64", positions=rng.uniform(0, 15, (64, 3)), cell=CELL, pbc=True)
    atoms.calc = Free()
    temperature, friction = 1000.0, 0.02  # friction in 1/fs
    dyn = Langevin(
        atoms, 2 * fs, temperature_K=temperature, friction=friction / fs, rng=rng, fixcm=False
    )
    path = tmp_path / "free.extxyz"
    frames = []
    dyn.attach(lambda: frames.append(atoms.copy()), interval=10)
    dyn.run(6000)
    ase.io.write(path, frames)
    traj = read_trajectory(path, timestep_fs=20.0)
    result = diffusivity(traj, "Li", temperature, fit_range_ps=(2.0, 6.0))
    mass_kg = atoms.get_masses()[0] * 1.66053906660e-27
    exact = 1.380649e-23 * temperature / (mass_kg * friction * 1e15) * 1e4  # m2/s -> cm2/s
    assert result.diffusivity == pytest.approx(exact, rel=0.15)


@pytest.mark.parametrize(("n_li", "n_frames", "smoothed"), [(256, 400, False), (64, 1000, True)])
def test_pymatgen_diffusion_analyzer_agrees(n_li, n_frames, smoothed):
    pytest.importorskip("pymatgen.analysis.diffusion")
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
    from pymatgen.core import Lattice, Structure

    traj = random_walk(n_li=n_li, n_frames=n_frames, seed=5)
    frac = traj.positions @ np.linalg.inv(CELL)
    species = ["Li" if z == 3 else "O" for z in traj.numbers]
    structures = [Structure(Lattice(CELL), species, f) for f in frac]
    ref = DiffusionAnalyzer.from_structures(
        structures,
        "Li",
        temperature=1000,
        time_step=traj.timestep_fs,
        step_skip=1,
        smoothed=smoothed,
    )
    # smoothed=True fits the whole run (from all origins); smoothed=False, origin 0 only.
    window = (0.0, traj.timestep_fs * (n_frames - 1) / 1000) if smoothed else None
    ours = diffusivity(traj, "Li", 1000.0, fit_range_ps=window)
    assert ours.diffusivity == pytest.approx(ref.diffusivity, rel=0.05)


def test_bad_trajectories(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_trajectory(tmp_path / "none.extxyz", 1.0)
    path = tmp_path / "short.extxyz"
    ase.io.write(path, [ase.Atoms("Li", cell=CELL, pbc=True)] * 2)
    with pytest.raises(DataError, match="at least 3"):
        read_trajectory(path, 1.0)
    with pytest.raises(DataError, match="no Na atoms"):
        diffusivity(random_walk(n_li=4, n_frames=50), "Na", 1000.0)
    with pytest.raises(DataError, match="unknown element"):
        diffusivity(random_walk(n_li=4, n_frames=50), "Xx", 1000.0)
