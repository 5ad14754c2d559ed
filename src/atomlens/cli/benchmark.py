"""``atomlens benchmark``: k-fold evaluation of a model on one task."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from atomlens.cli.core import add_set_argument
from atomlens.cli.options import add_device_argument, device_overrides


def register(commands: Any) -> None:
    """Add the benchmark command to the ``atomlens`` parser."""
    bench = commands.add_parser(
        "benchmark",
        help="k-fold benchmark of a model on a MatBench task or any labelled extxyz",
        description="Train and test a model on each of k folds (MatBench's definition: "
        "KFold(shuffle, seed 18012019)), with an inner validation split for early "
        "stopping. Writes per-fold and mean MAE to <out>/benchmark.json and a table to "
        "<out>/benchmark.md, each fold's per-record test predictions to "
        "<out>/fold_<k>/test_predictions.csv (id, reference, prediction) and, with "
        "--matbench-results, MatBench's result file <out>/results.json.gz. Folds are computed "
        "over all records of the task; records skipped (invalid, no label, no graph) leave "
        "their fold without moving others and are listed in benchmark.json. Rerunning the "
        "same command resumes: finished folds are kept, "
        "an interrupted fold continues from its last checkpoint.",
    )
    bench.add_argument(
        "--task",
        required=True,
        help="matbench_<name> (e.g. matbench_mp_gap) or a label of --data "
        "(e.g. formation_energy_per_atom)",
    )
    bench.add_argument("--data", default=None, help="structure file with labels (extxyz, db)")
    bench.add_argument(
        "--model", required=True, help="a registered model (atomlens.models.MODELS), e.g. scann"
    )
    bench.add_argument("--folds", type=int, default=5, help="number of folds (default: 5)")
    bench.add_argument(
        "--only-fold",
        type=int,
        action="append",
        default=None,
        metavar="K",
        help="run only fold K (0-based); repeatable",
    )
    bench.add_argument("--out", type=Path, required=True, help="output folder")
    bench.add_argument("--config", type=Path, default=None, help="training config YAML")
    add_set_argument(bench, "training.max_minutes=20 or model.width=128")
    bench.add_argument(
        "--no-symmetry",
        action="store_true",
        help="a model with a symmetry stream (SEN) without it (the ablation); same as "
        "--set model.symmetry=false",
    )
    add_device_argument(bench, training=True)
    bench.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of each fold's training data used for early stopping (default: 0.1)",
    )
    bench.add_argument(
        "--matbench-results",
        action="store_true",
        help="also write <out>/results.json.gz in MatBench's result-file format "
        "(MatbenchBenchmark.to_file) once every fold is done",
    )
    bench.set_defaults(handler=_benchmark)


def _benchmark(args: argparse.Namespace) -> None:
    from atomlens.cli.checks import fraction
    from atomlens.errors import DataError
    from atomlens.files import check_output_dir
    from atomlens.models import model_spec
    from atomlens.training.benchmark import format_table, run_benchmark

    if args.folds < 2:
        raise DataError(f"--folds: cross-validation needs at least 2 folds, got {args.folds}")
    if args.only_fold and any(not 0 <= k < args.folds for k in args.only_fold):
        raise DataError(f"--only-fold must lie in 0..{args.folds - 1}, got {args.only_fold}")
    fraction(args.val_fraction, "--val-fraction")
    check_output_dir(args.out, "--out")
    overrides = device_overrides(args)
    if args.no_symmetry:
        if not model_spec(args.model).can("needs_symmetry"):
            raise DataError(f"--no-symmetry: model '{args.model}' has no symmetry stream")
        overrides.append("model.symmetry=false")
    summary = run_benchmark(
        args.task,
        args.model,
        args.out,
        data=args.data,
        n_folds=args.folds,
        val_fraction=args.val_fraction,
        config_path=args.config,
        overrides=overrides,
        folds=args.only_fold,
        progress=sys.stderr.isatty(),
        matbench_results=args.matbench_results,
    )
    print()
    print(format_table(summary))
    print(f"wrote {args.out / 'benchmark.json'} and {args.out / 'benchmark.md'}")
    if summary["matbench_results"]:
        print(f"wrote {args.out / summary['matbench_results']}")
