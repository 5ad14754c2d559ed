"""Diffusivity and activation energy from trajectories, in seconds (no MD needed).

    python examples/diffusion_analysis.py

Li random walkers with a known Arrhenius diffusivity stand in for MD trajectories at three
temperatures; atomlens recovers D at each (MSD by FFT, drift removed) and Ea.
"""

import numpy as np

from atomlens.diffusion.arrhenius import fit_arrhenius
from atomlens.diffusion.msd import Trajectory, diffusivity
from atomlens.units import KB_EV

rng = np.random.default_rng(0)
cell = np.eye(3) * 15.0
ea, d0, dt_fs = 0.30, 1e-3, 50.0
temperatures, results = (1000.0, 1500.0, 2000.0), []
for temperature in temperatures:
    d_true = d0 * np.exp(-ea / (KB_EV * temperature))
    sigma = np.sqrt(2 * d_true * 10.0 * dt_fs)  # per-axis step, Angstrom
    li = rng.uniform(0, 15, (64, 3)) + np.cumsum(rng.normal(0, sigma, (1500, 64, 3)), axis=0)
    framework = rng.uniform(0, 15, (64, 3)) + rng.normal(0, 0.05, (1500, 64, 3))
    positions = np.concatenate([li, framework], axis=1) % 15.0  # wrapped, like MD output
    traj = Trajectory(positions, cell, np.array([3] * 64 + [8] * 64), dt_fs)
    result = diffusivity(traj, "Li", temperature)
    results.append(result)
    print(
        f"{temperature:6.0f} K: D = {result.diffusivity:.3e} ± {result.diffusivity_std:.1e} "
        f"cm2/s (true {d_true:.3e})"
    )

fit = fit_arrhenius(
    temperatures, [r.diffusivity for r in results], [r.diffusivity_std for r in results]
)
print(f"Ea = {fit.activation_energy:.3f} ± {fit.activation_energy_std:.3f} eV (true {ea})")
