"""Can the attention be trusted? Faithfulness and first-principles agreement of trained runs.

For each run (HOMO or LUMO models on QM9): a seeded sample of its test molecules, then
- deletion/insertion faithfulness with both masks (``atom`` and ``readout``),
- Spearman correlation of attention with PySCF HOMO and LUMO Löwdin atom weights, against
  random, centrality and heavy-atom baselines (the other orbital is a specificity control).

Orbital weights are cached per molecule (``--cache-dir``), so an interrupted run resumes.
Writes benchmarks/results/explain.json.

    python benchmarks/bench_explain.py runs/demo runs/demo_lumo --n 100
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def evaluate_run(run: Path, args: argparse.Namespace) -> dict:
    from atomlens.explain import explain, faithfulness
    from atomlens.explain.validation import validate_attention
    from atomlens.inference import load_model

    predictor = load_model(run)
    structures, _ = predictor.split_structures("test", args.n, args.seed)
    explanations = explain(predictor, structures)
    evaluation = run / "evaluation_test.json"
    report: dict = {
        "target": predictor.target,
        "parameters": predictor.metadata.get("parameters"),
        "train_size": predictor.metadata["split"]["train"],
        "test_mae": json.loads(evaluation.read_text())["mae"] if evaluation.is_file() else None,
        "n_molecules": len(explanations),
    }
    for mode in ("atom", "readout"):
        start = time.perf_counter()
        result = faithfulness(predictor, explanations, mode=mode, seed=args.seed)
        report[f"faithfulness_{mode}"] = result.summary() | {"seconds": time.perf_counter() - start}
    for reference in ("homo", "lumo"):
        start = time.perf_counter()
        result = validate_attention(
            explanations,
            reference,
            args.cache_dir,
            method=args.method,
            basis=args.basis,
            seed=args.seed,
        )
        report[f"validation_{reference}"] = result.summary() | {
            "seconds": time.perf_counter() - start
        }
    return report


def print_run(run: str, report: dict) -> None:
    print(
        f"\n{run}: {report['target']} model, train {report['train_size']}, "
        f"test MAE {report['test_mae']}, {report['n_molecules']} test molecules"
    )
    for mode in ("atom", "readout"):
        f = report[f"faithfulness_{mode}"]
        deletion = " ".join(f"{k} {v:.3f}" for k, v in f["deletion_auc"].items())
        insertion = " ".join(f"{k} {v:.3f}" for k, v in f["insertion_auc"].items())
        wins = f"{f['deletion_win_rate_vs_random']:.0%} / {f['insertion_win_rate_vs_random']:.0%}"
        print(f"  faithfulness ({mode} mask): deletion AUC {deletion}")
        print(f"    insertion AUC {insertion}; attention beats random {wins}")
    for reference in ("homo", "lumo"):
        v = report[f"validation_{reference}"]
        scores = "  ".join(
            f"{name} {v[name]['spearman_mean']:+.3f}±{v[name]['spearman_sem']:.3f}"
            for name in ("attention", "random", "centrality", "heavy_atom")
        )
        print(f"  Spearman vs {reference.upper()} weights: {scores}")
        heavy = "  ".join(
            f"{name} {v[name]['spearman_heavy_mean']:+.3f}±{v[name]['spearman_heavy_sem']:.3f}"
            for name in ("attention", "random", "centrality")
        )
        print(f"    heavy atoms only: {heavy}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run directories (QM9 HOMO/LUMO)")
    parser.add_argument("--n", type=int, default=100, help="test molecules per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default="b3lyp")
    parser.add_argument("--basis", default="6-31g")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/atomlens/orbitals"))
    parser.add_argument("--out", type=Path, default=RESULTS / "explain.json")
    args = parser.parse_args()

    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for run in args.runs:
        report = evaluate_run(run, args)
        report["command"] = (
            f"python benchmarks/bench_explain.py {run} --n {args.n} --method {args.method} "
            f"--basis {args.basis}"
        )
        results[str(run)] = report
        print_run(str(run), report)
        from atomlens.files import write_json_atomic

        write_json_atomic(args.out, results)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
