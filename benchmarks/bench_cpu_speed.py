"""SCANN+ training throughput on CPU, old code against new code, side by side.

    python benchmarks/bench_cpu_speed.py                      # 3000 QM9 molecules, 5 rounds
    python benchmarks/bench_cpu_speed.py --molecules 1000 --rounds 3 --baseline def5109

The baseline commit is checked out into a temporary ``git worktree``. The same QM9
batches (the first ``--molecules`` molecules, shuffled with seed 0, batch 64) are
collated once with the baseline's code and saved; then each round trains the
reference-size SCANN+ (the QM9 configuration of ``bench_training.py``) once with the
baseline tree and once with the working tree, each in a fresh subprocess whose
``PYTHONPATH`` is that tree's ``src``, alternating which goes first, so machine noise
hits both. A run is: same seed, same initial weights, a few warm-up steps, then one
timed pass over all batches of forward + RMSE loss + backward + gradient clipping + Adam
step, on ``--threads`` torch threads. The batches are plain tensors, so only the model
code differs between the two trees. Both runs also report the eval-mode predictions on
the first batch and the training losses, to show that the two compute the same thing.

Results (per-round throughput, medians, speed-up) go to
``benchmarks/results/cpu_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
QM9_MODEL = {
    "variant": "scann_plus",
    "embedding_dim": 48,
    "local_dim": 128,
    "n_layers": 6,
    "n_heads": 8,
    "max_distance": 4.0,
}
BATCH_FIELDS = (
    "numbers",
    "graph_index",
    "centers",
    "neighbors",
    "distance",
    "solid_angle",
    "solid_angle_ratio",
    "num_atoms",
    "targets",
)


def prepare(molecules: int, batch_size: int, out: Path) -> None:
    """Collate the first ``molecules`` QM9 molecules into shuffled batches, saved as tensors."""
    import numpy as np
    import torch

    from atomlens.batching import collate
    from atomlens.datasets import GraphDataset, build_graph_cache, load_source

    source = load_source("qm9", targets=["homo"], limit=molecules)
    dataset = GraphDataset(build_graph_cache(source, workers=1, progress=False))
    order = np.random.default_rng(0).permutation(len(dataset))
    batches = []
    for start in range(0, len(order) - batch_size + 1, batch_size):
        batch = collate(dataset, order[start : start + batch_size])
        batches.append({name: getattr(batch, name) for name in BATCH_FIELDS})
    torch.save(batches, out)


def worker(batches_file: Path, warmup: int, threads: int, seed: int, out: Path) -> None:
    """Train on the saved batches with the ``atomlens`` on ``sys.path``; write timings."""
    import torch
    from torch.nn import functional as F  # noqa: N812

    import atomlens
    from atomlens.models.scann import Scann, ScannConfig

    torch.set_num_threads(threads)
    batches = []
    for tensors in torch.load(batches_file):
        batch = types.SimpleNamespace(**tensors)
        batch.num_graphs = int(tensors["num_atoms"].shape[0])
        batches.append(batch)
    torch.manual_seed(seed)
    model = Scann(ScannConfig(**QM9_MODEL))
    model.eval()
    with torch.no_grad():
        reference = model(batches[0])["prediction"].tolist()
    model.train()
    decay = [
        p
        for n, p in model.named_parameters()
        if n.endswith("weight") and p.dim() == 2 and "embedding" not in n
    ]
    rest = [p for p in model.parameters() if all(p is not q for q in decay)]
    optimizer = torch.optim.Adam(
        [{"params": decay, "weight_decay": 1e-4}, {"params": rest, "weight_decay": 0.0}],
        lr=5e-4,
    )

    def step(batch: types.SimpleNamespace) -> float:
        optimizer.zero_grad(set_to_none=True)
        prediction = model(batch)["prediction"]
        loss = torch.sqrt(F.mse_loss(prediction, batch.targets[:, 0]) + 1e-12)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        return float(loss.detach())

    losses = [step(batch) for batch in batches[:warmup]]
    step_seconds = []
    start = time.perf_counter()
    for batch in batches:
        before = time.perf_counter()
        losses.append(step(batch))
        step_seconds.append(time.perf_counter() - before)
    seconds = time.perf_counter() - start
    molecules = sum(batch.num_graphs for batch in batches)
    report = {
        "atomlens": str(Path(atomlens.__file__).resolve()),
        "molecules": molecules,
        "seconds": seconds,
        "molecules_per_s": molecules / seconds,
        "step_seconds": step_seconds,
        "eval_prediction_batch0": reference,
        "losses": losses,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    out.write_text(json.dumps(report))


def run_tree(src: Path, args: list[str]) -> None:
    """Run this script in a subprocess that imports ``atomlens`` from ``src``."""
    env = os.environ | {
        "PYTHONPATH": str(src),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }
    subprocess.run([sys.executable, __file__, *args], check=True, cwd=ROOT, env=env)


def relative_difference(a: list[float], b: list[float]) -> float:
    """Largest |a - b| over paired values, relative to the largest |a|."""
    scale = max(max(abs(x) for x in a), 1e-30)
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) / scale


def best_of_rounds(runs: list[dict]) -> float:
    """Molecules/s from each batch's fastest step over all rounds (robust to noise bursts)."""
    fastest = [min(steps) for steps in zip(*(r["step_seconds"] for r in runs), strict=True)]
    return runs[0]["molecules"] / sum(fastest)


def compare(args: argparse.Namespace) -> dict:
    """Old and new trees, alternating, ``args.rounds`` rounds; returns the report."""
    tmp = Path(tempfile.mkdtemp(prefix="atomlens_speed_"))
    old_tree = tmp / "baseline"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(old_tree), args.baseline],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    trees = {"old": old_tree / "src", "new": ROOT / "src"}
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    try:
        batches = tmp / "batches.pt"
        prepare_args = ["--prepare", str(batches), "--molecules", str(args.molecules)]
        run_tree(trees["old"], [*prepare_args, "--batch-size", str(args.batch_size)])
        for round_ in range(args.rounds):
            order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
            for name in order:
                out = tmp / f"{name}_{round_}.json"
                worker_args = [
                    "--worker",
                    str(batches),
                    "--json",
                    str(out),
                    "--warmup",
                    str(args.warmup),
                    "--threads",
                    str(args.threads),
                ]
                run_tree(trees[name], worker_args)
                report = json.loads(out.read_text())
                if not report["atomlens"].startswith(str(trees[name].resolve())):
                    raise RuntimeError(f"{name} run imported {report['atomlens']}")
                runs[name].append(report)
                print(
                    f"round {round_ + 1}/{args.rounds} {name}: "
                    f"{report['molecules_per_s']:.1f} molecules/s",
                    flush=True,
                )
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=False
        )
    rates = {name: [r["molecules_per_s"] for r in runs[name]] for name in runs}
    medians = {name: statistics.median(rates[name]) for name in rates}
    ratios = [new / old for old, new in zip(rates["old"], rates["new"], strict=True)]
    best = {name: best_of_rounds(runs[name]) for name in runs}
    first_old, first_new = runs["old"][0], runs["new"][0]
    return {
        "command": " ".join(["python", "benchmarks/bench_cpu_speed.py", *sys.argv[1:]]),
        "baseline_commit": args.baseline,
        "model": QM9_MODEL | {"batch_size": args.batch_size},
        "parameters": first_new["parameters"],
        "molecules_per_round": first_new["molecules"],
        "warmup_steps": args.warmup,
        "threads": args.threads,
        "rounds": args.rounds,
        "old_molecules_per_s": rates["old"],
        "new_molecules_per_s": rates["new"],
        "old_median": medians["old"],
        "new_median": medians["new"],
        "speedup_of_medians": medians["new"] / medians["old"],
        "per_round_speedup": ratios,
        "median_per_round_speedup": statistics.median(ratios),
        "old_best_of_rounds": best["old"],
        "new_best_of_rounds": best["new"],
        "speedup_best_of_rounds": best["new"] / best["old"],
        "eval_prediction_max_rel_diff": relative_difference(
            first_old["eval_prediction_batch0"], first_new["eval_prediction_batch0"]
        ),
        "first_losses_old": first_old["losses"][:5],
        "first_losses_new": first_new["losses"][:5],
    }


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--molecules", "--limit", type=int, default=3000, dest="molecules")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--baseline", default="def5109")
    parser.add_argument("--output", type=Path, default=RESULTS / "cpu_speed.json")
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.molecules, args.batch_size, args.prepare)
        return
    if args.worker:
        worker(args.worker, args.warmup, args.threads, seed=0, out=args.json)
        return
    report = compare(args)
    print(f"\n{'code':<6}{'median molecules/s':>20}{'best of rounds':>16}   per round")
    for name in ("old", "new"):
        rounds = " ".join(f"{r:.1f}" for r in report[f"{name}_molecules_per_s"])
        median, best = report[f"{name}_median"], report[f"{name}_best_of_rounds"]
        print(f"{name:<6}{median:>20.1f}{best:>16.1f}   {rounds}")
    print(
        f"speed-up (ratio of medians) {report['speedup_of_medians']:.2f}x; "
        f"median per-round ratio {report['median_per_round_speedup']:.2f}x; "
        f"best-of-rounds {report['speedup_best_of_rounds']:.2f}x; "
        f"eval predictions max relative difference {report['eval_prediction_max_rel_diff']:.1e}"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
