"""Training throughput of SCANN+, and an equal-budget comparison with PyG's SchNet.

    python benchmarks/bench_training.py throughput --crystals PATH
    python benchmarks/bench_training.py compare --task qm9_homo --budget-min 10
    python benchmarks/bench_training.py compare --task mp_eform --crystals PATH --budget-min 10

SchNet (torch_geometric, `pip install 'atomlens[bench]'`) gets atomlens' cutoff graph
through its `interaction_graph` argument. Both models see the same split, the same
wall-clock budget on the same 2 cores, keep their best-validation weights and are scored
on the same test set. Results go to benchmarks/results/training_*.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from atomlens.batching import iterate_batches
from atomlens.config import validate_config
from atomlens.datasets import GraphDataset, Split, build_graph_cache, load_source, make_params
from atomlens.files import write_json_atomic
from atomlens.training.evaluate import evaluate_run
from atomlens.training.metrics import regression_metrics
from atomlens.training.trainer import learning_rate, train

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parents[1]
# The reference-size SCANN+ of the paper, as in the packaged QM9 configs (one definition).
QM9_MODEL = yaml.safe_load((ROOT / "src/atomlens/configs/qm9_homo.yaml").read_text())["model"]
MP_MODEL = QM9_MODEL | {"embedding_dim": 128, "max_distance": 6.0}


def scann_config(task: str, crystals: str | None, run_dir: Path, **training) -> dict:
    if task == "qm9_homo":
        data = {
            "source": "qm9",
            "target": "homo",
            "limit": 12000,
            "split": {"train": 10000, "val": 1000, "test": 1000, "seed": 0},
        }
        model = QM9_MODEL
    else:
        data = {
            "source": crystals,
            "target": "formation_energy_per_atom",
            "split": {"val": 0.1, "test": 0.1, "seed": 0},
        }
        model = MP_MODEL
    return {
        "run_dir": str(run_dir),
        "data": data,
        "model": model,
        "training": {
            "epochs": 1000,
            "batch_size": 64,
            "lr": 5e-4,
            "min_lr": 5e-5,
            "scheduler": "cosine",
            "patience": 1000,
        }
        | training,
    }


def random_sample_file(path: str, n: int, seed: int = 0) -> str:
    """A seeded random sample of an extxyz file (the first frames are not representative)."""
    import ase.io

    frames = ase.io.read(path, index=":")
    picked = np.random.default_rng(seed).choice(len(frames), size=n, replace=False)
    target = ROOT / "runs" / f"bench_sample_{n}_{seed}.extxyz"
    target.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(target, [frames[i] for i in sorted(picked)], format="extxyz")
    return str(target)


def random_qm9_file(n: int, seed: int = 0) -> str:
    """A seeded random sample of QM9 with HOMO labels, as extxyz."""
    import ase.io

    from atomlens.structures import to_ase

    source = load_source("qm9", targets=["homo"])
    picked = np.random.default_rng(seed).choice(len(source), size=n, replace=False)
    frames = []
    for i in sorted(picked):
        atoms = to_ase(source.structures[i])
        atoms.info = {"homo": float(source.targets[i, 0])}
        frames.append(atoms)
    target = ROOT / "runs" / f"bench_qm9_sample_{n}_{seed}.extxyz"
    target.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(target, frames, format="extxyz")
    return str(target)


def throughput(args: argparse.Namespace) -> None:
    report = {}
    samples = {
        "qm9_homo": random_qm9_file(3000),
        "mp_eform": random_sample_file(args.crystals, 3000),
    }
    for task, limit in (("qm9_homo", 3000), ("mp_eform", 3000)):
        run_dir = ROOT / "runs" / f"bench_throughput_{task}"
        shutil.rmtree(run_dir, ignore_errors=True)
        raw = scann_config(task, samples[task], run_dir, epochs=3)
        raw["data"]["source"] = samples[task]
        raw["data"]["limit"] = limit
        raw["data"]["split"] = {
            "train": int(limit * 0.8),
            "val": int(limit * 0.1),
            "test": int(limit * 0.1),
            "seed": 0,
        }
        config = validate_config(raw)
        train(config, overwrite=True, progress=False)
        rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
        rate = float(np.mean([float(r["structures_per_s"]) for r in rows[1:]]))
        params = json.loads((run_dir / "metadata.json").read_text())["parameters"]
        full = 110_000 if task == "qm9_homo" else 60_000
        report[task] = {
            "parameters": params,
            "train_structures_per_s": rate,
            "epochs_measured": len(rows) - 1,
            "full_data_train_set": full,
            "minutes_per_full_epoch_2cores": full / rate / 60,
        }
        print(task, json.dumps(report[task], indent=1))
    write(report, "training_throughput.json")


class PrecomputedGraph:
    """SchNet interaction_graph that returns the current batch's cutoff edges."""

    def __init__(self):
        self.edges = None

    def __call__(self, pos, batch):
        return self.edges


def schnet_run(
    dataset: GraphDataset, split: Split, budget_min: float, seed: int, readout: str
) -> dict:
    from torch_geometric.nn.models import SchNet

    torch.manual_seed(seed)
    graph = PrecomputedGraph()
    model = SchNet(
        hidden_channels=128,
        num_filters=128,
        num_interactions=6,
        num_gaussians=50,
        cutoff=5.0,
        interaction_graph=graph,
        readout=readout,
    )
    targets = np.asarray(dataset.targets[:, 0])
    mean, std = float(targets[split.train].mean()), float(targets[split.train].std())
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    cosine = validate_config(
        {
            "data": {"source": "x", "target": "y"},
            "training": {"epochs": 1000, "lr": 5e-4, "min_lr": 5e-5},
        }
    )

    def forward(batch):
        graph.edges = (torch.stack([batch.neighbors, batch.centers]), batch.distance)
        return model(batch.numbers, batch.positions, batch.graph_index).squeeze(-1)

    def predict(indices):
        model.eval()
        with torch.no_grad():
            out = [forward(b).numpy() * std + mean for b in iterate_batches(dataset, indices, 256)]
        model.train()
        return np.concatenate(out)

    start, epoch, best, best_state = time.perf_counter(), 0, math.inf, None
    while time.perf_counter() - start < 60 * budget_min:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cosine, epoch)
        order = np.random.default_rng(seed + epoch).permutation(split.train)
        for batch in iterate_batches(dataset, order, 64):
            optimizer.zero_grad()
            loss = torch.sqrt(
                torch.nn.functional.mse_loss(forward(batch), (batch.targets[:, 0] - mean) / std)
                + 1e-12
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            if time.perf_counter() - start > 60 * budget_min:
                break
        epoch += 1
        val = regression_metrics(targets[split.val], predict(split.val))["mae"]
        if val < best:
            best = val
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        print(f"schnet epoch {epoch} val_mae {val:.4g}", flush=True)
    model.load_state_dict(best_state)
    test = regression_metrics(targets[split.test], predict(split.test))
    return {
        "epochs": epoch,
        "best_val_mae": best,
        "test": test,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def compare(args: argparse.Namespace) -> None:
    run_dir = ROOT / "runs" / f"bench_compare_{args.task}"
    config = validate_config(
        scann_config(args.task, args.crystals, run_dir, max_minutes=args.budget_min)
    )
    if args.reuse_scann and (run_dir / "training_summary.json").is_file():
        print(f"reusing the finished atomlens run in {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        train(config, overwrite=True, progress=False)
    scann_test = evaluate_run(run_dir)
    summary = json.loads((run_dir / "training_summary.json").read_text())

    source = load_source(config.data.source, targets=[config.data.target], limit=config.data.limit)
    cutoff = GraphDataset(
        build_graph_cache(
            source,
            "cutoff",
            make_params("cutoff", cutoff=5.0, allow_isolated=True),
            cache_dir=config.data.cache_dir,
        )
    )
    split = Split.load(run_dir / "split.json")
    assert len(cutoff) == split.n_total, "the cutoff and Voronoi data sets differ"
    # SchNet gets exactly the training time atomlens used (which may overrun the nominal
    # budget by part of an epoch, as the trainer stops at epoch ends).
    schnet_budget = summary["train_seconds"] / 60
    t = time.perf_counter()
    schnet = schnet_run(cutoff, split, schnet_budget, 0, "mean")
    schnet_seconds = time.perf_counter() - t
    report = {
        "task": args.task,
        "budget_minutes": args.budget_min,
        "split": {
            "train": int(split.train.size),
            "val": int(split.val.size),
            "test": int(split.test.size),
            "seed": split.seed,
        },
        "atomlens_scann_plus": {
            "test": scann_test,
            "epochs": summary["epochs"],
            "best_val_mae": summary["best_val_mae"],
            "train_seconds": summary["train_seconds"],
        },
        "schnet_pyg": schnet
        | {"wall_seconds": schnet_seconds, "cutoff": 5.0, "budget_minutes": schnet_budget},
    }
    print(json.dumps(report, indent=1))
    write(report, f"training_compare_{args.task}.json")


def write(report: dict, name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(RESULTS / name, report)
    print(f"wrote {RESULTS / name}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(required=True)
    p = commands.add_parser("throughput")
    p.add_argument("--crystals", required=True)
    p.set_defaults(run=throughput)
    p = commands.add_parser("compare")
    p.add_argument("--task", choices=["qm9_homo", "mp_eform"], required=True)
    p.add_argument("--crystals", default=None)
    p.add_argument("--budget-min", type=float, default=10.0)
    p.add_argument(
        "--reuse-scann",
        action="store_true",
        help="reuse a finished atomlens run of this task (only SchNet trains)",
    )
    p.set_defaults(run=compare)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
