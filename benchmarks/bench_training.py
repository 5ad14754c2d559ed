"""Training throughput of SCANN+, and equal-budget comparisons with PyG's SchNet.

    python benchmarks/bench_training.py throughput --crystals PATH
    python benchmarks/bench_training.py compare --task qm9_homo --budget-min 10
    python benchmarks/bench_training.py compare --task mp_eform --crystals PATH --budget-min 10
    python benchmarks/bench_training.py zoo --run runs/zoo/qm9-homo   # or --run qm9-homo

SchNet (torch_geometric, `pip install 'atomlens[bench]'`) gets atomlens' cutoff graph
through its `interaction_graph` argument (see schnet_baseline.py: resumable, checkpointed
after every epoch, budget in accumulated training seconds). Both models see the same split
and the same training time, keep their best-validation weights and are scored on the same
test set. `compare` trains both on a small split (benchmarks/results/training_*.json);
`zoo` trains SchNet on exactly the split, data and training seconds of a finished SCANN+
run, or of a shipped model given by name (its split drawn again from its config and checked
against its test fixture; benchmarks/results/zoo_schnet_<name>.json). Rerunning a
command resumes its SchNet run.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from atomlens.config import validate_config
from atomlens.datasets import Split, load_source
from atomlens.datasets.run_data import load_sources, open_run_data, part_specs, resolve_split
from atomlens.errors import DataError
from atomlens.files import write_json_atomic
from atomlens.inference import load_model
from atomlens.training.evaluate import evaluate_run
from atomlens.training.metrics import regression_metrics
from atomlens.training.trainer import predict_indices, train
from atomlens.zoo import resolve_model
from schnet_baseline import Budget, SchNetSettings, cutoff_data, train_schnet

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


def compare(args: argparse.Namespace) -> None:
    run_dir = ROOT / "runs" / f"bench_compare_{args.task}"
    config = validate_config(
        scann_config(args.task, args.crystals, run_dir, max_minutes=args.budget_min)
    )
    schnet_dir = run_dir.with_name(run_dir.name + "_schnet")
    if args.reuse_scann and (run_dir / "training_summary.json").is_file():
        print(f"reusing the finished atomlens run in {run_dir}")
    else:  # a new SCANN+ run: the SchNet run of the old one goes too
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(schnet_dir, ignore_errors=True)
        train(config, overwrite=True, progress=False)
    scann_test = evaluate_run(run_dir)
    summary = json.loads((run_dir / "training_summary.json").read_text())

    source = load_source(config.data.source, targets=[config.data.target], limit=config.data.limit)
    split = Split.load(run_dir / "split.json")
    dataset, rows = cutoff_data(source, split, SchNetSettings().cutoff, workers=args.workers)
    # SchNet gets exactly the training time atomlens used (which may overrun the nominal
    # budget by part of an epoch, as the trainer stops at epoch ends).
    schnet_budget = summary["train_seconds"] / 60
    t = time.perf_counter()
    schnet = train_schnet(
        dataset, rows, schnet_dir, Budget(seconds=60 * schnet_budget), threads=args.threads
    )
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
        "schnet_pyg": {k: v for k, v in schnet.items() if k != "history"}
        | {"wall_seconds_this_call": schnet_seconds, "budget_minutes": schnet_budget},
    }
    print(json.dumps(report, indent=1))
    write(report, f"training_compare_{args.task}.json")


def scann_test_metrics(run_dir: Path) -> dict[str, Any]:
    """Test metrics of a run's best checkpoint: its evaluation_test.json, else computed.

    Computing them here writes nothing into the run directory.
    """
    saved = run_dir / "evaluation_test.json"
    if saved.is_file():
        metrics = json.loads(saved.read_text())
        if metrics.get("checkpoint") == "best" and metrics.get("split") == "test":
            return metrics
    predictor = load_model(run_dir, "best", "cpu")
    run = open_run_data(run_dir, predictor.metadata)
    rows = run.rows.test
    predicted = predict_indices(predictor.model, run.dataset, rows, predictor.scaling, 256)
    metrics = regression_metrics(np.asarray(run.dataset.targets[rows, 0]), predicted)
    return metrics | {"split": "test", "checkpoint": "best", "target": predictor.target}


@dataclass
class ScannRun:
    """What the ``zoo`` comparison needs of a SCANN+ model: its data, split and figures."""

    name: str
    where: str
    config: Any
    source: Any
    split: Split
    split_file: str
    seconds_from: str
    unit: str
    figures: dict[str, Any]

    @property
    def seconds(self) -> float:
        """The SCANN+ model's training seconds: SchNet's budget unless one is given."""
        return float(self.figures["train_seconds"])


def finished_run(run: Path, name: str | None, crystals: str | None) -> ScannRun:
    """A finished training run: its config, ``split.json`` and test metrics."""
    if not (run / "config.yaml").is_file() or not (run / "split.json").is_file():
        raise DataError(f"--run '{run}' is not a finished atomlens run (no config.yaml/split.json)")
    config, source = _config_and_source(run / "config.yaml", crystals)
    split = Split.load(run / "split.json")
    if len(source) != split.n_total:
        raise DataError(
            f"'{config.data.source}' has {len(source)} records, but the split of '{run}' was "
            f"drawn from {split.n_total}: not the run's data (pass --crystals)"
        )
    summary = json.loads((run / "training_summary.json").read_text())
    metadata = json.loads((run / "metadata.json").read_text())
    scann = scann_test_metrics(run)
    figures = {
        "test": {k: scann[k] for k in ("mae", "rmse", "r2", "n")},
        "epochs": summary["epochs"],
        "best_epoch": summary.get("best_epoch"),
        "train_seconds": summary["train_seconds"],
        "parameters": metadata["parameters"],
        "threads": config.training.threads,
        "device": summary.get("device"),
    }
    return ScannRun(
        name or run.name, str(run), config, source, split, str(run / "split.json"),
        "the run's training_summary.json train_seconds", metadata.get("unit", ""), figures,
    )  # fmt: skip


def shipped_run(folder: Path, crystals: str | None) -> ScannRun:
    """A shipped model: its config's split drawn again, checked against its test fixture.

    The split is random with the config's seed, so drawing it again from the same data gives
    the run's; the first 200 test records in sorted order must be the structures of the
    model's fixture (``tests/data/zoo/<name>.extxyz``), which the export wrote from the run.
    """
    name, card = folder.name, json.loads((folder / "card.json").read_text())
    config, source = _config_and_source(folder / "config.yaml", crystals)
    split = resolve_split(config.data, {part: source for part in ("train", "val", "test")})
    fixture = ROOT / card["test_subset"]["fixture"]
    expected = load_source(str(fixture), targets=[config.data.target]).structures
    drawn = [source.structures[i] for i in np.sort(split.test)[: len(expected)]]
    same = len(drawn) == len(expected) and all(
        np.array_equal(a.numbers, b.numbers) and np.allclose(a.positions, b.positions, atol=1e-5)
        for a, b in zip(drawn, expected, strict=True)
    )
    if not same:
        raise DataError(
            f"the split drawn again from '{config.data.source}' is not the one '{name}' was "
            f"trained on (its test records differ from '{fixture}'): pass the run with --run"
        )
    metadata = json.loads((folder / "metadata.json").read_text())
    figures = {
        "test": card["test"],
        "epochs": card["epochs"],
        "best_epoch": card["best_epoch"],
        "train_seconds": 60 * card["training_minutes"],
        "parameters": card["parameters"],
        "threads": config.training.threads,
        "device": metadata.get("trained_on", {}).get("device"),
    }
    return ScannRun(
        name, f"shipped model {name}", config, source, split,
        f"drawn again from {name}'s config (seed {split.seed}), checked against {fixture.name}",
        "the card's training_minutes (rounded to 0.1 min)",
        card["unit"], figures,
    )  # fmt: skip


def _config_and_source(config_file: Path, crystals: str | None) -> tuple[Any, Any]:
    """A run's validated config (``--crystals`` replacing its data file) and its one source."""
    config = validate_config(yaml.safe_load(config_file.read_text()))
    if crystals:
        config = config.model_copy(
            update={"data": config.data.model_copy(update={"source": crystals})}
        )
    specs = part_specs(config.data)
    if len(set(specs.values())) != 1:
        raise DataError(f"'{config_file}' takes its parts from several sources; not supported")
    return config, load_sources(config.data)["train"]


def zoo(args: argparse.Namespace) -> None:
    """SchNet on a SCANN+ model's split, data and training seconds; both scored."""
    folder, shipped = resolve_model(args.run)
    if shipped is None:
        scann = finished_run(folder, args.name, args.crystals)
    else:
        scann = shipped_run(folder, args.crystals)
    name, split = args.name or scann.name, scann.split
    seconds = 60 * args.budget_min if args.budget_min else scann.seconds
    settings = SchNetSettings()
    dataset, rows = cutoff_data(scann.source, split, settings.cutoff, workers=args.workers)
    if not np.array_equal(dataset.records[rows.test], split.test):
        raise DataError("the SchNet test rows are not the run's test records")
    work = Path(args.work) if args.work else ROOT / "runs" / "bench_schnet" / name
    t = time.perf_counter()
    schnet = train_schnet(
        dataset, rows, work, Budget(seconds=seconds), settings, threads=args.threads
    )
    wall = time.perf_counter() - t
    report = {
        "model": name,
        "run": scann.where,
        "target": scann.config.data.target,
        "unit": scann.unit,
        "data": {"source": scann.config.data.source, "records": split.n_total},
        "split": {
            "train": int(split.train.size),
            "val": int(split.val.size),
            "test": int(split.test.size),
            "seed": split.seed,
            "file": scann.split_file,
        },
        "budget": {
            "training_seconds": seconds,
            "from": f"--budget-min {args.budget_min}" if args.budget_min else scann.seconds_from,
            "counts": "the whole epoch loop (training steps, validation, checkpoints), as "
            "atomlens' training.max_minutes",
        },
        "scann_plus": scann.figures,
        "schnet_pyg": {k: v for k, v in schnet.items() if k != "history"}
        | {"work_folder": str(work), "wall_seconds_this_call": wall},
        "schnet_val_mae_per_epoch": [h["val_mae"] for h in schnet["history"]],
        "scann_plus_beats_schnet": bool(scann.figures["test"]["mae"] < schnet["test"]["mae"]),
    }
    print(json.dumps({k: report[k] for k in ("scann_plus", "scann_plus_beats_schnet")}, indent=1))
    out = Path(args.out) if args.out else RESULTS / f"zoo_schnet_{name}.json"
    write_json_atomic(out, report)
    print(f"wrote {out}")


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
    p.set_defaults(command=throughput)
    p = commands.add_parser("compare")
    p.add_argument("--task", choices=["qm9_homo", "mp_eform"], required=True)
    p.add_argument("--crystals", default=None)
    p.add_argument("--budget-min", type=float, default=10.0)
    p.add_argument(
        "--reuse-scann",
        action="store_true",
        help="reuse a finished atomlens run of this task (only SchNet trains)",
    )
    p.set_defaults(command=compare)
    p = commands.add_parser("zoo", help="SchNet at the equal budget of a finished SCANN+ run")
    p.add_argument(
        "--run",
        required=True,
        help="the SCANN+ run directory (e.g. runs/zoo/qm9-homo) or a shipped model's name",
    )
    p.add_argument("--name", default=None, help="name of the results (default: the run's)")
    p.add_argument("--crystals", default=None, help="path of the run's data file, if moved")
    p.add_argument(
        "--budget-min", type=float, default=None, help="default: the run's training seconds"
    )
    p.add_argument("--work", default=None, help="SchNet folder (default runs/bench_schnet/NAME)")
    p.add_argument("--out", default=None, help="default benchmarks/results/zoo_schnet_NAME.json")
    p.set_defaults(command=zoo)
    for sub in commands.choices.values():
        sub.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
        sub.add_argument("--workers", type=int, default=1, help="graph-building processes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        args.command(args)
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
