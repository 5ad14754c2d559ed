import ase
import ase.io
import numpy as np
import pytest

from atomlens.diffusion.arrhenius import fit_arrhenius
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
