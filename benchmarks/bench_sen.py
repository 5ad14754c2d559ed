"""SEN against SCANN on Materials Project crystals, same folds and same CPU budget per fold.

A reduced protocol sized for 2 CPU cores: a seeded random subset of the 36,737-crystal file,
5 folds (KFold(shuffle, seed 18012019), MatBench's definition), 10 % of each fold's
training rows for early stopping, and the same wall-clock training budget per fold for
every model (scheduler ``cosine_budget``, i.e. one cosine over the budget). Three models:
SEN with its symmetry stream, SEN without it (the ablation) and SCANN+; two targets:
formation energy and band gap. Each run is ``atomlens benchmark`` and resumes per fold.

Training throughput is measured apart, on an otherwise idle machine: training steps
(forward, backward, Adam) on batches of 32 subset crystals, at 1 and 2 threads.

Writes benchmarks/results/sen.json (per-fold MAE, mean, throughput, separability).

    python benchmarks/bench_sen.py --data ../shared/data/mp_crystals_36k.extxyz \
        --subset 3000 --minutes 1.0 --out runs/bench_sen
    python benchmarks/bench_sen.py --collect-only --out runs/bench_sen
    python benchmarks/bench_sen.py --throughput --out runs/bench_sen
    python benchmarks/bench_sen.py --fold0-minutes 5 --out runs/bench_sen

The last line is a longer-budget check: fold 0 of formation energy, SEN + symmetry against
SCANN+, each with the given budget.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
TARGETS = ("formation_energy_per_atom", "band_gap")
MODELS = {  # label -> (model, extra overrides)
    "sen_symmetry": ("sen", []),
    "sen_no_symmetry": ("sen", ["model.symmetry=false"]),
    "scann": ("scann", []),
}


def write_subset(data: Path, size: int, seed: int, path: Path) -> Path:
    """A seeded random subset of a structure file, written once as extxyz."""
    import ase.io

    if path.is_file():
        return path
    frames = ase.io.read(data, index=":")
    chosen = np.sort(np.random.default_rng(seed).choice(len(frames), size, replace=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.extxyz")
    ase.io.write(tmp, [frames[i] for i in chosen], format="extxyz")
    tmp.replace(path)
    return path


def budget_overrides(out: Path, minutes: float, threads: int) -> list[str]:
    """The equal-budget training settings every model gets."""
    return [
        f"training.max_minutes={minutes}",
        "training.scheduler=cosine_budget",
        "training.epochs=1000",
        f"training.threads={threads}",
        f"data.cache_dir={out / 'cache'}",
    ]


def run_all(subset: Path, out: Path, minutes: float, threads: int) -> None:
    from atomlens.training.benchmark import run_benchmark

    budget = budget_overrides(out, minutes, threads)
    for target in TARGETS:
        for label, (model, extra) in MODELS.items():
            start = time.perf_counter()
            run_benchmark(
                target,
                model,
                out / f"{target}-{label}",
                data=str(subset),
                overrides=budget + extra,
                progress=False,
            )
            print(f"{target} {label}: {time.perf_counter() - start:.0f} s", flush=True)


def fold0_longer(subset: Path, out: Path, minutes: float, threads: int) -> dict:
    """Fold 0 of formation energy with a longer budget: SEN + symmetry and SCANN+."""
    from atomlens.training.benchmark import run_benchmark

    report = {}
    for label in ("sen_symmetry", "scann"):
        model, extra = MODELS[label]
        summary = run_benchmark(
            TARGETS[0],
            model,
            out / f"fold0-{minutes:g}min-{label}",
            data=str(subset),
            overrides=budget_overrides(out, minutes, threads) + extra,
            folds=[0],
            progress=False,
        )
        fold = summary["folds"][0]
        report[label] = {
            "minutes": minutes,
            "mae": fold["mae"],
            "epochs": fold["epochs"],
            "crystal_system_knn_accuracy": fold["separability"]["crystal_system_knn_accuracy"],
        }
        print(f"fold 0, {minutes:g} min, {label}: MAE {fold['mae']:.4f} ({fold['epochs']} epochs)")
    return report


def throughput(subset: Path, out: Path, batches: int = 30, batch_size: int = 32) -> dict:
    """Training structures per second of SEN (with and without symmetry) and SCANN+."""
    import torch

    from atomlens.batching import iterate_batches
    from atomlens.models import build_model
    from atomlens.training.benchmark import _dataset, benchmark_config
    from atomlens.training.trainer import make_optimizer

    report: dict = {}
    for label, (model_name, extra) in MODELS.items():
        config = benchmark_config(
            model_name,
            str(subset),
            TARGETS[0],
            overrides=[f"data.cache_dir={out / 'cache'}", *extra],
        )
        dataset = _dataset(config, progress=False)
        order = np.random.default_rng(0).permutation(len(dataset))
        batches_list = list(iterate_batches(dataset, order, batch_size))[: batches + 3]
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            model = build_model(config.model).train()
            optimizer = make_optimizer(model, config)
            for k, batch in enumerate(batches_list):
                if k == 3:
                    start = time.perf_counter()
                optimizer.zero_grad()
                prediction = model(batch)["prediction"]
                (prediction - batch.targets[:, 0]).abs().mean().backward()
                optimizer.step()
            seconds = time.perf_counter() - start
            rate = batches * batch_size / seconds
            report[f"{label}/threads_{threads}"] = {
                "structures_per_s": rate,
                "parameters": int(sum(p.numel() for p in model.parameters())),
                "atoms_per_structure": float(
                    np.mean([b.num_atoms.float().mean().item() for b in batches_list])
                ),
            }
            print(f"{label:<18} {threads} thread(s): {rate:7.1f} structures/s", flush=True)
    return report


def collect(out: Path) -> dict:
    results: dict = {}
    for target in TARGETS:
        for label in MODELS:
            file = out / f"{target}-{label}" / "benchmark.json"
            if not file.is_file():
                continue
            summary = json.loads(file.read_text())
            folds = summary["folds"]
            seps = [f["separability"] for f in folds if f["separability"]]
            results[f"{target}/{label}"] = {
                "n_structures": summary["n_structures"],
                "protocol": summary["protocol"],
                "parameters": _parameters(out / f"{target}-{label}"),
                "mae_per_fold": summary["mae_per_fold"],
                "mae_mean": summary["mae_mean"],
                "mae_std": summary["mae_std"],
                "unit": summary["unit"],
                "epochs_per_fold": [f["epochs"] for f in folds],
                "train_structures_per_s_median": float(
                    np.median([f["train_structures_per_s"] for f in folds])
                ),
                "crystal_system_knn_accuracy": [s["crystal_system_knn_accuracy"] for s in seps],
                "crystal_system_chance": [s["crystal_system_chance"] for s in seps],
                "space_group_knn_accuracy": [s["space_group_knn_accuracy"] for s in seps],
            }
    return results


def _parameters(bench_dir: Path) -> int | None:
    meta = bench_dir / "fold_0" / "metadata.json"
    return json.loads(meta.read_text())["parameters"] if meta.is_file() else None


def print_table(results: dict) -> None:
    print(f"{'target/model':<42}{'MAE mean ± std':>22}{'epochs':>10}{'struct/s':>10}{'kNN sys':>9}")
    for key, r in results.items():
        knn = np.mean(r["crystal_system_knn_accuracy"]) if r["crystal_system_knn_accuracy"] else 0
        epochs = f"{min(r['epochs_per_fold'])}-{max(r['epochs_per_fold'])}"
        print(
            f"{key:<42}{r['mae_mean']:>12.4f} ± {r['mae_std']:<7.4f}{epochs:>10}"
            f"{r['train_structures_per_s_median']:>10.0f}{knn:>9.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/mp_crystals_36k.extxyz"))
    parser.add_argument("--subset", type=int, default=3000, help="crystals drawn (seed 0)")
    parser.add_argument("--minutes", type=float, default=1.5, help="training budget per fold")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_sen"))
    parser.add_argument("--collect-only", action="store_true")
    parser.add_argument("--throughput", action="store_true", help="only measure throughput")
    parser.add_argument("--fold0-minutes", type=float, default=None, help="longer fold-0 check")
    args = parser.parse_args()
    file = RESULTS / "sen.json"
    payload = json.loads(file.read_text()) if file.is_file() else {}
    subset = write_subset(args.data, args.subset, 0, args.out / f"mp_subset_{args.subset}.extxyz")
    if args.throughput:
        payload["throughput"] = throughput(subset, args.out)
    elif args.fold0_minutes:
        key = f"fold0_{args.fold0_minutes:g}min"
        payload[key] = fold0_longer(subset, args.out, args.fold0_minutes, args.threads)
    else:
        if not args.collect_only:
            run_all(subset, args.out, args.minutes, args.threads)
        results = collect(args.out)
        print_table(results)
        payload |= {"data": str(args.data), "subset": args.subset, "results": results}
    RESULTS.mkdir(exist_ok=True)
    from atomlens.files import write_json_atomic

    write_json_atomic(file, payload)
    print(f"wrote {RESULTS / 'sen.json'}")


if __name__ == "__main__":
    main()
