"""Spin-model figures: kernel throughput, time to Beale accuracy, H_c(T) runs.

    python benchmarks/bench_spins.py throughput      # ns per attempted move, 1 and 2 threads
    python benchmarks/bench_spins.py beale --size 16 # time until ln g matches Beale's exact DOS
    python benchmarks/bench_spins.py coercivity configs/coercivity_heisenberg.yaml
    python benchmarks/bench_spins.py threads --busy 0 1 # REWL wall time, 1 vs 2 threads, by
                                                      # OpenMP wait policy, on busy cores

Results go to benchmarks/results/spins.json (one key per part).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
from scipy.special import logsumexp

from atomlens.files import dumps_json

RESULTS = Path(__file__).parent / "results"


def save(key: str, value: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "spins.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(dumps_json(data) + "\n")  # strict JSON: NaN as null
    print(f"wrote {path} [{key}]")


def models() -> dict:
    from atomlens.spins.lattice import ising_square, simple_cubic_grain
    from atomlens.spins.nd2fe14b import nd2fe14b_grain

    return {
        "heisenberg_sc_8^3": simple_cubic_grain(8, J=1.0, D=0.1),
        "nd2fe14b_2x2x2_cells": nd2fe14b_grain(cells=(2, 2, 2)),
        "ising_square_32": ising_square(32),
    }


def throughput(args: argparse.Namespace) -> None:
    """Aggregate ns per attempted single-spin move of the Wang-Landau kernel (mode M at T)."""
    from atomlens.spins.wanglandau import Binning, ReplicaExchangeWangLandau, WangLandauSettings

    rows = {}
    for name, system in models().items():
        temperature = 300.0 if system.energy_unit == "K" else 1.0
        binning = (
            Binning.ising_energy(system)
            if system.ising
            else Binning.magnetisation(system, temperature, 64)
        )
        row = {"sites": system.n_sites}
        for threads in (1, 2):
            numba.set_num_threads(threads)
            settings = WangLandauSettings(walkers_per_window=threads, threads=threads)
            sampler = ReplicaExchangeWangLandau(system, binning, settings)
            sampler._sweep(1000)  # compile and leave the start configuration
            best = np.inf
            for _ in range(args.repeats):
                start = time.perf_counter()
                sampler._sweep(args.moves)
                best = min(best, time.perf_counter() - start)
            row[f"ns_per_move_{threads}_threads"] = 1e9 * best / (args.moves * threads)
        row["speedup_2_threads"] = row["ns_per_move_1_threads"] / row["ns_per_move_2_threads"]
        rows[name] = row
        print(
            f"{name:24s} {system.n_sites:5d} spins  1 thread {row['ns_per_move_1_threads']:6.1f} "
            f"ns/move  2 threads {row['ns_per_move_2_threads']:6.1f} ns/move (aggregate)  "
            f"speed-up {row['speedup_2_threads']:.2f}"
        )
    rows["note"] = (
        "aggregate ns per attempted move = wall time / (moves per walker x walkers); one walker "
        "per thread; best of repeats; includes the per-chunk energy refresh in Python"
    )
    rows["moves_per_walker"] = args.moves
    save("throughput", rows)


def beale(args: argparse.Namespace) -> None:
    """Wall time until the mean relative error of ln g against Beale's exact DOS drops below
    each target, for plain WL (1/t) and for REWL on the same cores."""
    from atomlens.spins.exact import ising2d_log_dos
    from atomlens.spins.lattice import ising_square
    from atomlens.spins.wanglandau import Binning, ReplicaExchangeWangLandau, WangLandauSettings

    size = args.size
    system = ising_square(size)
    binning = Binning.ising_energy(system)
    exact_e, exact_lng = ising2d_log_dos(size)
    n = size * size
    targets = sorted(args.targets, reverse=True)
    layouts = {
        "wl_1_walker": {"windows": 1, "walkers_per_window": 1, "threads": 1},
        "rewl_4x2": {"windows": 4, "walkers_per_window": 2, "threads": 2},
    }
    out = {"size": size, "targets": targets, "lnf_final": args.lnf_final}
    for name, layout in layouts.items():
        settings = WangLandauSettings(lnf_final=args.lnf_final, seed=args.seed, **layout)
        sampler = ReplicaExchangeWangLandau(system, binning, settings)
        reached: dict[str, float] = {}
        trace: list[tuple[float, float]] = []
        clock = {"start": time.perf_counter(), "excluded": 0.0, "last": 0.0}

        def error_of(result) -> float:
            visited = result.visited
            if not np.array_equal(binning.energy_centres[visited], exact_e):
                return float("inf")  # some exact level not reached yet
            ln_g = result.log_dos[visited]
            ln_g = ln_g - logsumexp(ln_g) + n * np.log(2)
            return float(np.mean(np.abs(ln_g - exact_lng) / exact_lng.clip(min=np.log(2))))

        def sampling_seconds(clock=clock) -> float:
            return time.perf_counter() - clock["start"] - clock["excluded"]

        def monitor(sampler, reached=reached, trace=trace, clock=clock) -> bool:
            now = sampling_seconds()
            if now - clock["last"] < args.every:
                return False
            clock["last"] = now
            paused = time.perf_counter()
            error = error_of(sampler.result())
            clock["excluded"] += time.perf_counter() - paused  # checks are not timed
            trace.append((round(now, 2), error))
            for target in targets:
                if error < target and str(target) not in reached:
                    reached[str(target)] = round(now, 2)
            return False

        result = sampler.run(progress=False, monitor=monitor)
        seconds = sampling_seconds()
        final = error_of(result)
        out[name] = {
            "seconds_to_target": reached,
            "final_error": final,
            "seconds_total": seconds,
            "trials": result.trials,
            "exchange_acceptance": result.exchange_acceptance,
            "trace": trace,
        }
        print(
            f"{name}: final mean relative error {final:.2e} after {seconds:.1f} s; "
            f"seconds to each target: {reached}"
        )
    save(f"beale_L{size}", out)


def coercivity(args: argparse.Namespace) -> None:
    """Run configs through `atomlens coercivity` and keep their summaries (with run cost)."""
    from atomlens.spins.config import load_coercivity_config
    from atomlens.spins.workflow import run_coercivity

    for path in args.configs:
        config = load_coercivity_config(path, args.set)
        start = time.perf_counter()
        summary = run_coercivity(config, progress=False)
        summary["wall_seconds_this_call"] = time.perf_counter() - start
        summary["config"] = str(path)
        save(f"coercivity_{Path(path).stem}", json.loads(json.dumps(summary, default=str)))


def threads_worker(args: argparse.Namespace) -> None:
    """One REWL run of a fixed number of trials; prints its wall time as JSON (subprocess).

    ``--policy default`` starts numba's threads before atomlens can, with ``OMP_WAIT_POLICY``
    unset (libgomp's default: spin a while, then sleep; what atomlens did before); ``passive``
    leaves the start to atomlens (its default); ``active`` sets ``OMP_WAIT_POLICY=ACTIVE``.
    """
    import numba

    if args.policy == "active":
        os.environ["OMP_WAIT_POLICY"] = "ACTIVE"
    else:
        os.environ.pop("OMP_WAIT_POLICY", None)
    if args.policy == "default":
        numba.get_num_threads()  # libgomp loads now, with its own default policy
    from atomlens.spins.lattice import simple_cubic_grain
    from atomlens.spins.wanglandau import Binning, ReplicaExchangeWangLandau, WangLandauSettings

    system = simple_cubic_grain(4, J=1.0, D=0.2)
    binning = Binning.magnetisation(system, 0.2, 32, mirror=True, m_max=1.0)
    settings = WangLandauSettings(
        windows=args.windows,
        walkers_per_window=args.walkers,
        lnf_final=1e-12,  # never reached: the trial budget ends the run
        threads=args.threads,
        seed=1,
        sweeps_per_check=args.sweeps_per_check,
    )
    from atomlens.spins.system import SpinModelError

    ReplicaExchangeWangLandau(system, binning, settings)._sweep(1000)  # compile, start threads
    sampler = ReplicaExchangeWangLandau(system, binning, settings)
    budget = args.trials
    start = time.perf_counter()
    # the real driver loop: kernel chunks, schedule, replica exchange; stopped this early, the
    # windows may not overlap yet and joining them (after the loop) fails
    with contextlib.suppress(SpinModelError):
        sampler.run(progress=False, monitor=lambda s: int(s.trials.sum()) >= budget)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "trials": int(sampler.trials.sum()),
                "numba_threads": numba.get_num_threads(),
                "layer": numba.threading_layer(),
                "policy": args.policy,
            }
        )
    )


def threads(args: argparse.Namespace) -> None:
    """REWL wall time with 1 and 2 numba threads, per OpenMP wait policy, idle or busy cores.

    Every run is a fresh process (libgomp reads its wait policy once, when it loads); the
    configurations are interleaved and repeated, and ``--busy K`` keeps K pure-Python busy
    loops running on the same cores during each measurement.
    """
    policies = ("default", "passive", "active")
    rows: dict[str, dict] = {}
    for busy in args.busy:
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.repeats):
            for policy in policies:
                for n_threads in (1, 2):
                    loads = [
                        subprocess.Popen([sys.executable, "-c", "while True: pass"])
                        for _ in range(busy)
                    ]
                    try:
                        command = [sys.executable, __file__, "threads-worker", "--threads",
                                   str(n_threads), "--trials", str(args.trials), "--windows",
                                   str(args.windows), "--walkers", str(args.walkers),
                                   "--policy", policy, "--sweeps-per-check",
                                   str(args.sweeps_per_check)]  # fmt: skip
                        result = subprocess.run(command, capture_output=True, text=True, check=True)
                    finally:
                        for load in loads:
                            load.kill()
                            load.wait()
                    seconds = json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
                    times.setdefault((policy, n_threads), []).append(seconds)
        row: dict[str, object] = {}
        for policy in policies:
            one = statistics.median(times[(policy, 1)])
            two = statistics.median(times[(policy, 2)])
            row[policy] = {
                "seconds_1_thread": one,
                "seconds_2_threads": two,
                "speedup_2_threads": one / two,
                "all_seconds_1_thread": times[(policy, 1)],
                "all_seconds_2_threads": times[(policy, 2)],
            }
            print(
                f"busy loops {busy}, wait policy {policy:7s}: 1 thread {one:6.2f} s, "
                f"2 threads {two:6.2f} s, speed-up {one / two:.2f}"
            )
        rows[f"busy_{busy}"] = row
    rows["setup"] = {
        "model": "simple_cubic_grain(4, J=1, D=0.2), 64 spins, M bins 32 (mirrored), T = 0.2",
        "walkers": args.windows * args.walkers,
        "trials_per_kernel_call": max(20_000, int(args.sweeps_per_check * 64)),
        "trials": args.trials,
        "repeats": args.repeats,
        "statistic": "median wall time of the repeats; each run a fresh process",
        "cores": os.cpu_count(),
        "note": "busy = pure-Python busy loops on the same cores during each run; the shared "
        "machine also ran other jobs",
    }
    save("threads_wait_policy", rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--moves", type=int, default=2_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(run=throughput)
    p = sub.add_parser("beale")
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--targets", type=float, nargs="+", default=[5e-3, 2e-3, 1e-3])
    p.add_argument("--lnf-final", type=float, default=1e-7)
    p.add_argument("--every", type=float, default=1.0, help="seconds between error checks")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=beale)
    p = sub.add_parser("threads")
    p.add_argument("--busy", type=int, nargs="+", default=[0, 1], help="busy loops per run")
    p.add_argument("--trials", type=int, default=20_000_000, help="trials per run, all walkers")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--windows", type=int, default=2)
    p.add_argument("--walkers", type=int, default=1, help="walkers per window")
    p.add_argument("--sweeps-per-check", type=float, default=10.0, help="chunk per kernel call")
    p.set_defaults(run=threads)
    p = sub.add_parser("threads-worker")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--trials", type=int, required=True)
    p.add_argument("--windows", type=int, default=2)
    p.add_argument("--walkers", type=int, default=1)
    p.add_argument("--policy", choices=["default", "passive", "active"], default="passive")
    p.add_argument("--sweeps-per-check", type=float, default=10.0)
    p.set_defaults(run=threads_worker)
    p = sub.add_parser("coercivity")
    p.add_argument("configs", nargs="+")
    p.add_argument("--set", action="append", default=[])
    p.set_defaults(run=coercivity)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
