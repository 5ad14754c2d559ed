"""Calibration of the error bars a user reads: D from `diffusion`, Ea and D(300 K) from `arrhenius`.

Every check draws synthetic data with a known truth and counts how often the estimate
± 1 and ± 2 reported standard errors contains it (ideal: 68.3 % and 95.4 %), and how the
mean reported error compares with the real scatter of the estimates (ideal: 1).

    python benchmarks/bench_calibration.py                 # both parts, default trial counts
    python benchmarks/bench_calibration.py diffusion --trials 200
    python benchmarks/bench_calibration.py arrhenius --trials 2000

1. diffusion: random walks of Li in a jittering O framework (wrapped into a 15 Å cell) with
   D = 1e-5 cm²/s, analysed by `atomlens.diffusion.msd.diffusivity` with its automatic
   window (and one case with the whole run as the window). The old error (spread of five
   blocks over sqrt(5)) is computed from the same runs' block D values for comparison.
2. arrhenius: D at 1000/1500/2000 K (and 1000-2500 K, four points) with lognormal noise of
   known size given as the errors; Ea = 0.3 eV, D0 = 1e-3 cm²/s. Also the full chain:
   random walks at three temperatures -> D ± error -> Arrhenius fit on those errors.

3. sisso: whether the default screening size recovers y = 2.5 x1 x2 - 1.7 x3^2/x4 + 0.3
   (ten primaries in [0.5, 3], all ten operators, complexity 2) where --sis-size 20 did
   not, and what the default costs on the 43-primary synthetic diffusivity table.

    python benchmarks/bench_calibration.py sisso

Results go to benchmarks/results/calibration.json (one key per part).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
CELL = np.eye(3) * 15.0
D_TRUE = 1e-5
EA_TRUE, D0_TRUE = 0.3, 1e-3


def random_walk(
    n_li: int, n_frames: int, d_cm2_s: float, dt_fs: float, seed: int, drift: float = 0.0
) -> Any:
    """Li walkers with diffusivity ``d_cm2_s`` in a jittering (optionally drifting) O framework."""
    from atomlens.diffusion.msd import Trajectory

    rng = np.random.default_rng(seed)
    sigma = np.sqrt(2 * d_cm2_s * 10.0 * dt_fs)  # per-axis step variance 2 D dt (Å², fs)
    li = rng.uniform(0, 15, (n_li, 3)) + np.cumsum(rng.normal(0, sigma, (n_frames, n_li, 3)), 0)
    o = rng.uniform(0, 15, (n_li, 3)) + rng.normal(0, 0.05, (n_frames, n_li, 3))
    shift = drift * dt_fs * np.arange(n_frames)[:, None, None] * np.array([1.0, 0.5, 0.0])
    positions = np.concatenate([li, o], axis=1) + shift
    frac = positions @ np.linalg.inv(CELL)
    wrapped = (frac - np.floor(frac)) @ CELL
    return Trajectory(wrapped, CELL, np.array([3] * n_li + [8] * n_li), dt_fs)


def coverage(estimates: np.ndarray, errors: np.ndarray, truth: float, dof: int | None) -> dict:
    """Coverage at 1 and 2 sigma (and at the 95 % t quantile when ``dof`` is given)."""
    from scipy import stats

    z = (np.asarray(estimates) - truth) / np.asarray(errors)
    n = len(z)
    out = {
        "trials": n,
        "coverage_1sigma": float(np.mean(np.abs(z) < 1)),
        "coverage_2sigma": float(np.mean(np.abs(z) < 2)),
        "coverage_2sigma_binomial_se": float(np.sqrt(0.954 * 0.046 / n)),
        "z_min": float(z.min()),
        "z_max": float(z.max()),
        "mean_error_over_scatter": float(np.mean(errors) / np.std(estimates, ddof=1)),
    }
    if dof:
        quantile = float(stats.t.ppf(0.975, dof))
        out["t_quantile_95"] = quantile
        out["coverage_t95"] = float(np.mean(np.abs(z) < quantile))
    return out


def diffusion_case(
    name: str, n_li: int, n_frames: int, dt_fs: float, trials: int, **options: Any
) -> dict:
    from atomlens.diffusion.msd import diffusivity

    drift = options.pop("drift", 0.0)
    start = time.perf_counter()
    d, err, old, dof = [], [], [], 0
    for seed in range(trials):
        traj = random_walk(n_li, n_frames, D_TRUE, dt_fs, seed=10_000 + seed, drift=drift)
        result = diffusivity(traj, "Li", 1000.0, **options)
        d.append(result.diffusivity)
        err.append(result.diffusivity_std)
        blocks = np.asarray(result.block_diffusivities)
        old.append(blocks.std(ddof=1) / np.sqrt(len(blocks)))
        dof = result.error_dof
    d, err = np.array(d), np.array(err)
    out = {
        "case": name,
        "li_atoms": n_li,
        "frames": n_frames,
        "timestep_fs": dt_fs,
        "run_ps": n_frames * dt_fs / 1000,
        "fit_range_ps": list(result.fit_range_ps),
        "drift_A_per_fs": drift,
        "relative_scatter_of_D": float(np.std(d, ddof=1) / D_TRUE),
        "mean_relative_error_reported": float(np.mean(err) / D_TRUE),
        "mean_relative_bias": float(np.mean(d) / D_TRUE - 1),
        "per_ion_error": coverage(d, err, D_TRUE, dof),
        "old_block_error": coverage(d, np.array(old), D_TRUE, len(blocks) - 1),
        "seconds": time.perf_counter() - start,
    }
    new, before = out["per_ion_error"], out["old_block_error"]
    print(
        f"{name:34s} {trials} walks: scatter {out['relative_scatter_of_D']:.2%}, reported "
        f"{out['mean_relative_error_reported']:.2%}; 2-sigma coverage {new['coverage_2sigma']:.1%}"
        f" (old block error {before['coverage_2sigma']:.1%}); z {new['z_min']:.2f}.."
        f"{new['z_max']:.2f}"
    )
    return out


def bench_diffusion(trials: int) -> dict:
    cases = [
        diffusion_case("128 Li, 2000 frames x 100 fs", 128, 2000, 100.0, trials),
        diffusion_case("32 Li, 300 frames x 100 fs", 32, 300, 100.0, trials),
        diffusion_case("8 Li, 300 frames x 100 fs", 8, 300, 100.0, trials),
        diffusion_case("64 Li, 1000 frames, drifting frame", 64, 1000, 100.0, trials, drift=0.002),
        diffusion_case(
            "32 Li, 300 frames, whole run fitted", 32, 300, 100.0, trials, fit_range_ps=(0, 29.9)
        ),
    ]
    return {"D_true_cm2_s": D_TRUE, "cases": cases}


def arrhenius_case(temperatures: np.ndarray, relative_error: float, trials: int, seed: int) -> dict:
    from atomlens.diffusion.arrhenius import fit_arrhenius
    from atomlens.units import KB_EV

    rng = np.random.default_rng(seed)
    truth = D0_TRUE * np.exp(-EA_TRUE / (KB_EV * temperatures))
    ln_room_truth = np.log(D0_TRUE) - EA_TRUE / (KB_EV * 300.0)
    rows: dict[str, list] = {k: [] for k in ("ea", "std", "input", "plain_ea", "plain", "room")}
    rows["room_std"], rows["old"] = [], []
    for _ in range(trials):
        d = truth * np.exp(rng.normal(0, relative_error, len(temperatures)))
        fit = fit_arrhenius(temperatures, d, relative_error * d)
        plain = fit_arrhenius(temperatures, d)
        room, room_std = fit.extrapolate(300.0)
        rows["ea"].append(fit.activation_energy)
        rows["std"].append(fit.activation_energy_std)
        rows["input"].append(fit.activation_energy_std_input)
        # before issue 15 item 15: always rescaled by chi2/dof, down as well as up
        rows["old"].append(fit.activation_energy_std_input * np.sqrt(fit.chi2 / max(fit.dof, 1)))
        rows["plain_ea"].append(plain.activation_energy)
        rows["plain"].append(plain.activation_energy_std)
        rows["room"].append(np.log(room))
        rows["room_std"].append(room_std)
    dof = len(temperatures) - 2
    out = {
        "temperatures_K": temperatures.tolist(),
        "relative_error_of_D": relative_error,
        "Ea_reported": coverage(np.array(rows["ea"]), np.array(rows["std"]), EA_TRUE, None),
        "Ea_input_errors_only": coverage(
            np.array(rows["ea"]), np.array(rows["input"]), EA_TRUE, None
        ),
        "Ea_old_chi2_rescaling": coverage(
            np.array(rows["ea"]), np.array(rows["old"]), EA_TRUE, None
        ),
        "Ea_no_errors_given": coverage(
            np.array(rows["plain_ea"]), np.array(rows["plain"]), EA_TRUE, dof
        ),
        "lnD_300K_reported": coverage(
            np.array(rows["room"]), np.array(rows["room_std"]), ln_room_truth, None
        ),
    }
    print(
        f"Arrhenius {len(temperatures)} T, {relative_error:.0%} errors, {trials} fits: "
        f"Ea 2-sigma coverage {out['Ea_reported']['coverage_2sigma']:.1%} (input errors only "
        f"{out['Ea_input_errors_only']['coverage_2sigma']:.1%}; old rescaling "
        f"{out['Ea_old_chi2_rescaling']['coverage_2sigma']:.1%}; no errors given: "
        f"{out['Ea_no_errors_given']['coverage_2sigma']:.1%}, t-interval "
        f"{out['Ea_no_errors_given']['coverage_t95']:.1%}); ln D(300 K) "
        f"{out['lnD_300K_reported']['coverage_2sigma']:.1%}"
    )
    return out


def arrhenius_chain(trials: int) -> dict:
    """Random walks at three temperatures -> D ± error -> Arrhenius on those errors."""
    from atomlens.diffusion.arrhenius import fit_arrhenius
    from atomlens.diffusion.msd import diffusivity
    from atomlens.units import KB_EV

    temperatures = np.array([1000.0, 1500.0, 2000.0])
    truth = D0_TRUE * np.exp(-EA_TRUE / (KB_EV * temperatures))
    start = time.perf_counter()
    ea, std = [], []
    for trial in range(trials):
        results = [
            diffusivity(random_walk(32, 300, d, 100.0, seed=50_000 + 3 * trial + k), "Li", t)
            for k, (d, t) in enumerate(zip(truth, temperatures, strict=True))
        ]
        fit = fit_arrhenius(
            temperatures,
            [r.diffusivity for r in results],
            [r.diffusivity_std for r in results],
        )
        ea.append(fit.activation_energy)
        std.append(fit.activation_energy_std)
    out = {
        "walks": "32 Li, 300 frames x 100 fs at each temperature",
        "Ea_reported": coverage(np.array(ea), np.array(std), EA_TRUE, None),
        "seconds": time.perf_counter() - start,
    }
    print(
        f"chain (walks -> D ± error -> Ea), {trials} triplets: Ea 2-sigma coverage "
        f"{out['Ea_reported']['coverage_2sigma']:.1%}, mean error / scatter "
        f"{out['Ea_reported']['mean_error_over_scatter']:.2f}"
    )
    return out


def bench_arrhenius(trials: int, chain_trials: int) -> dict:
    three = np.array([1000.0, 1500.0, 2000.0])
    four = np.array([1000.0, 1500.0, 2000.0, 2500.0])
    return {
        "Ea_true_eV": EA_TRUE,
        "D0_true_cm2_s": D0_TRUE,
        "synthetic": [
            arrhenius_case(three, 0.02, trials, seed=1),
            arrhenius_case(three, 0.05, trials, seed=2),
            arrhenius_case(three, 0.20, trials, seed=3),
            arrhenius_case(four, 0.05, trials, seed=4),
        ],
        "chain": arrhenius_chain(chain_trials),
    }


def sisso_issue_formula(max_dim: int, sis_size: int | None) -> dict:
    from atomlens.descriptors import sisso

    x = np.random.default_rng(0).uniform(0.5, 3.0, (200, 10))
    y = 2.5 * x[:, 0] * x[:, 1] - 1.7 * x[:, 2] ** 2 / x[:, 3] + 0.3
    names = [f"x{i + 1}" for i in range(10)]
    start = time.perf_counter()
    result = sisso.sisso(x, y, names, complexity=2, max_dim=max_dim, sis_size=sis_size)
    model = result.models[1]
    return {
        "max_dim": max_dim,
        "sis_size": sis_size if sis_size else "default",
        "sis_sizes_tried": result.sis_sizes_tried,
        "candidates": result.n_candidates,
        "two_term_model": sisso.display(model.formula("y"), names),
        "two_term_rmse": model.rmse,
        "recovered": bool(model.rmse < 1e-9),
        "seconds": time.perf_counter() - start,
        "l0_subsets": result.l0_subsets,
        "warning": result.warning,
    }


def bench_sisso(table_run: bool) -> dict:
    out: dict = {"issue_formula": []}
    for max_dim in (2, 3):
        for sis_size in (20, None):
            row = sisso_issue_formula(max_dim, sis_size)
            out["issue_formula"].append(row)
            print(
                f"SISSO D={max_dim}, sis_size {row['sis_size']}: {row['two_term_model']} "
                f"(recovered: {row['recovered']}; {row['seconds']:.1f} s)"
            )
    if table_run:
        import tempfile

        from atomlens.descriptors import sisso
        from atomlens.descriptors.synthetic import diffusivity_table
        from atomlens.descriptors.table import read_table

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "diffusivity.csv"
            diffusivity_table().to_csv(path, index=False)
            table = read_table(path, "lnD", group_by="composition", exclude=("temperature",))
        start = time.perf_counter()
        result = sisso.sisso(table.x, table.y, table.feature_names, complexity=2, max_dim=3)
        seconds = time.perf_counter() - start
        names = table.feature_names
        out["synthetic_table_default"] = {
            "table": "diffusivity_table() (828 rows, 43 primaries), ten operators, complexity 2",
            "max_dim": 3,
            "sis_sizes_tried": result.sis_sizes_tried,
            "candidates": result.n_candidates,
            "seconds": seconds,
            "screening_seconds": result.screening_seconds,
            "l0_seconds": result.l0_seconds,
            "l0_subsets": result.l0_subsets,
            "converged": result.converged,
            "warning": result.warning,
            "models": [
                {"formula": sisso.display(m.formula("lnD"), names), "rmse": m.rmse, "r2": m.r2}
                for m in result.models
            ],
        }
        print(
            f"SISSO default on the 43-primary table, complexity 2, D=3: {seconds:.0f} s "
            f"(screening {result.screening_seconds:.0f} s, L0 {result.l0_seconds:.0f} s over "
            f"{result.l0_subsets:,} subsets), sizes {result.sis_sizes_tried}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "part", nargs="?", choices=["diffusion", "arrhenius", "sisso", "all"], default="all"
    )
    parser.add_argument(
        "--no-table", action="store_true", help="sisso: skip the 43-primary table (minutes)"
    )
    parser.add_argument("--trials", type=int, default=None, help="default: 200 walks, 2000 fits")
    parser.add_argument("--chain-trials", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS / "calibration.json")
    args = parser.parse_args()
    from atomlens.files import write_text_atomic

    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.part in ("diffusion", "all"):
        results["diffusion"] = bench_diffusion(args.trials or 200)
        results["diffusion"]["command"] = "python benchmarks/bench_calibration.py diffusion"
    if args.part in ("arrhenius", "all"):
        results["arrhenius"] = bench_arrhenius(args.trials or 2000, args.chain_trials)
        results["arrhenius"]["command"] = "python benchmarks/bench_calibration.py arrhenius"
    if args.part in ("sisso", "all"):
        results["sisso"] = bench_sisso(not args.no_table)
        results["sisso"]["command"] = "python benchmarks/bench_calibration.py sisso"
    write_text_atomic(args.out, json.dumps(results, indent=2, allow_nan=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
