"""Diffusion tools: MSD speed vs pymatgen's DiffusionAnalyzer, CHGNet MD cost, an end-to-end run.

    python benchmarks/bench_diffusion.py msd            # 10,000-frame trajectory
    python benchmarks/bench_diffusion.py chgnet         # seconds per MD step, ~100 atoms
    python benchmarks/bench_diffusion.py end-to-end     # melt, anneal at 3 T, D, Ea

Results go to benchmarks/results/diffusion.json (one key per part).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
CELL = np.eye(3) * 15.0


def random_walk(n_li: int, n_frames: int, d_cm2_s: float, dt_fs: float, seed: int = 0):
    from atomlens.diffusion.msd import Trajectory

    rng = np.random.default_rng(seed)
    sigma = np.sqrt(2 * d_cm2_s * 10.0 * dt_fs)
    li = rng.uniform(0, 15, (n_li, 3)) + np.cumsum(rng.normal(0, sigma, (n_frames, n_li, 3)), 0)
    o = rng.uniform(0, 15, (n_li, 3)) + rng.normal(0, 0.05, (n_frames, n_li, 3))
    positions = np.concatenate([li, o], axis=1)
    frac = positions @ np.linalg.inv(CELL)
    wrapped = (frac - np.floor(frac)) @ CELL
    return Trajectory(wrapped, CELL, np.array([3] * n_li + [8] * n_li), dt_fs)


def median_seconds(function, repeats: int = 5) -> float:
    """Median wall time of ``repeats`` calls (after one untimed call)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_msd(n_frames: int) -> dict:
    import ase
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    from atomlens.diffusion.msd import Trajectory, diffusivity

    traj = random_walk(32, n_frames, 1e-5, 10.0)
    window = (0.0, traj.timestep_fs * (n_frames - 1) / 1000)  # pymatgen fits the whole run
    ours_seconds = median_seconds(lambda: diffusivity(traj, "Li", 1000.0, fit_range_ps=window))
    ours = diffusivity(traj, "Li", 1000.0, fit_range_ps=window)
    out: dict = {
        "frames": n_frames,
        "atoms": len(traj.numbers),
        "atomlens_seconds": ours_seconds,
        "atomlens_D_cm2_s": ours.diffusivity,
    }
    species = ["Li" if z == 3 else "O" for z in traj.numbers]
    frac = traj.positions @ np.linalg.inv(CELL)
    structure = Structure(Lattice(CELL), species, frac[0])
    # Unwrapped Cartesian displacements from frame 0, as DiffusionAnalyzer expects them
    # (sites, steps, 3); building them is not timed.
    steps = np.diff(frac, axis=0)
    steps -= np.round(steps)
    displacements = np.concatenate([np.zeros((1, *frac.shape[1:])), np.cumsum(steps, axis=0)])
    displacements = np.transpose(displacements @ CELL, (1, 0, 2))
    for smoothed in (True, "max"):
        start = time.perf_counter()
        ref = DiffusionAnalyzer(
            structure, displacements, "Li", 1000, traj.timestep_fs, 1, smoothed=smoothed
        )
        seconds = time.perf_counter() - start
        out[f"pymatgen_smoothed_{smoothed}"] = {
            "seconds": seconds,
            "D_cm2_s": ref.diffusivity,
            "speedup": seconds / ours_seconds,
            "D_ratio": ours.diffusivity / ref.diffusivity,
        }
        print(
            f"{n_frames:,} frames ({len(traj.numbers)} atoms), analysis only: atomlens "
            f"{ours_seconds:.2f} s, DiffusionAnalyzer(smoothed={smoothed}) {seconds:.2f} s -> "
            f"{seconds / ours_seconds:.1f}x; D {ours.diffusivity:.4g} vs {ref.diffusivity:.4g}"
        )
    # From frames in memory (what a user holds after reading a file): ase.Atoms frames.
    frames = [
        ase.Atoms(numbers=traj.numbers, positions=p, cell=CELL, pbc=True) for p in traj.positions
    ]
    start = time.perf_counter()
    stacked = Trajectory(np.stack([a.positions for a in frames]), CELL, traj.numbers, 10.0)
    ours_frames = diffusivity(stacked, "Li", 1000.0, fit_range_ps=window)
    ours_frames_seconds = time.perf_counter() - start
    start = time.perf_counter()
    structures = [AseAtomsAdaptor.get_structure(a) for a in frames]
    ref = DiffusionAnalyzer.from_structures(
        structures, "Li", 1000, traj.timestep_fs, 1, smoothed=True
    )
    ref_frames_seconds = time.perf_counter() - start
    out["from_frames"] = {
        "atomlens_seconds": ours_frames_seconds,
        "pymatgen_seconds": ref_frames_seconds,
        "speedup": ref_frames_seconds / ours_frames_seconds,
        "D_ratio": ours_frames.diffusivity / ref.diffusivity,
    }
    print(
        f"from {n_frames:,} ase.Atoms frames: atomlens {ours_frames_seconds:.2f} s, pymatgen "
        f"(AseAtomsAdaptor + from_structures) {ref_frames_seconds:.1f} s -> "
        f"{ref_frames_seconds / ours_frames_seconds:.0f}x; "
        f"D ratio {out['from_frames']['D_ratio']:.3f}"
    )
    return out


def bench_chgnet(formula: str, n_atoms: int, steps: int) -> dict:
    import torch
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from atomlens.diffusion.amorphous import (
        estimate_volume,
        make_calculator,
        parse_composition,
        random_pack,
    )

    symbols = parse_composition(formula, n_atoms)
    atoms = random_pack(symbols, estimate_volume(symbols), seed=0)
    atoms.calc = make_calculator("chgnet")
    MaxwellBoltzmannDistribution(atoms, temperature_K=2000, rng=np.random.default_rng(0))
    dyn = Langevin(
        atoms,
        2 * units.fs,
        temperature_K=2000,
        friction=0.01 / units.fs,
        rng=np.random.default_rng(1),
        fixcm=False,
    )
    out: dict = {"formula": formula, "atoms": len(atoms)}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        dyn.run(3)  # warm-up
        start = time.perf_counter()
        dyn.run(steps)
        seconds = (time.perf_counter() - start) / steps
        out[f"seconds_per_step_{threads}_threads"] = seconds
        print(
            f"CHGNet MD, {len(atoms)} atoms ({formula}), {threads} thread(s): {seconds:.3f} s/step"
        )
    return out


def bench_end_to_end(out_dir: Path) -> dict:
    import subprocess
    import sys

    start = time.perf_counter()
    command = [
        sys.executable,
        "-m",
        "atomlens.cli",
        "amorphous",
        "Li2SiO3",
        "--atoms",
        "48",
        "--melt",
        "3000",
        "--melt-steps",
        "400",
        "--anneal",
        "1500",
        "2000",
        "2500",
        "--anneal-steps",
        "1500",
        "--timestep",
        "2",
        "--interval",
        "5",
        "--diffusion",
        "Li",
        "--out",
        str(out_dir),
    ]
    subprocess.run(command, check=True)
    summary = json.loads((out_dir / "summary.json").read_text())
    summary["wall_seconds"] = time.perf_counter() - start
    summary["command"] = " ".join(command[2:])
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["msd", "chgnet", "end-to-end"])
    parser.add_argument("--frames", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--work", type=Path, default=Path("runs/bench_amorphous"))
    parser.add_argument("--out", type=Path, default=RESULTS / "diffusion.json")
    args = parser.parse_args()

    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.part == "msd":
        results["msd"] = bench_msd(args.frames)
    elif args.part == "chgnet":
        results["chgnet"] = bench_chgnet("Li2Si2O5", 100, args.steps)
    else:
        results["end_to_end"] = bench_end_to_end(args.work)
    from atomlens.files import write_json_atomic

    write_json_atomic(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
