"""Commands for data, graphs, training, evaluation and prediction."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from atomlens.cli.explain import _print_faithfulness
from atomlens.cli.options import (
    add_device_argument,
    add_model_argument,
    device_overrides,
    model_and_files,
)


def register(commands: Any) -> None:
    """Add this module's commands to the ``atomlens`` parser."""
    data = commands.add_parser("data", help="inspect data sources").add_subparsers(
        title="data commands", metavar="ACTION"
    )
    info = data.add_parser(
        "info",
        help="count structures, elements and label statistics of a source",
        description="Summarise a data source: qm9, matbench:<task>, or any file ASE reads.",
    )
    _add_source_arguments(info)
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(handler=_data_info)

    train = commands.add_parser(
        "train",
        help="train a SCANN model from a YAML config",
        description="Train SCANN/SCANN+ as configured (see configs/). Rerunning the same "
        "config resumes an interrupted run from its last checkpoint. Several processes: "
        "torchrun --nproc_per_node 2 -m atomlens.cli train CONFIG.",
    )
    train.add_argument("config", type=Path, nargs="?", help="YAML config (see configs/*.yaml)")
    train.add_argument(
        "--model",
        metavar="NAME",
        default=None,
        help="retrain the shipped model NAME from its config instead (see `atomlens models`)",
    )
    add_set_argument(train, "training.epochs=5 or data.limit=2000")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run with a different config in the same run_dir",
    )
    add_device_argument(train, training=True)
    train.set_defaults(handler=_train)

    demo = commands.add_parser(
        "demo",
        help="predict ethanol with a shipped model, then train a small model on QM9 HOMO",
        description="First predict ethanol with a shipped molecule model (seconds; see "
        "`atomlens models`) and print the most attended atoms. Then train a small SCANN+ on "
        "5,000 QM9 molecules (a few minutes on 2 cores), print its test MAE and the most "
        "attended atoms of an example molecule.",
    )
    demo.add_argument(
        "--run-dir", type=Path, default=None, help="where to put the run (default: runs/demo)"
    )
    demo.add_argument("--no-train", action="store_true", help="only the shipped model's prediction")
    demo.set_defaults(handler=_demo)

    evaluate = commands.add_parser(
        "evaluate",
        help="MAE/RMSE/R^2 of a trained run on its saved split or a labelled file, with a "
        "parity plot",
        description="Evaluate a run on its saved test (or val/train) split; writes "
        "evaluation_<split>.json and parity_<split>.png into the run directory. With --data "
        "FILE, score any labelled structure file instead (any format ASE reads; the label is "
        "the run's target in each frame's info; graphs use the run's graph parameters), "
        "without retraining: writes evaluation.json, parity.png and predictions.csv into "
        "--out (default: <run>/evaluations/<file stem>).",
    )
    evaluate.add_argument("run", type=Path, help="run directory")
    which = evaluate.add_mutually_exclusive_group()
    which.add_argument(
        "--split",
        choices=["test", "val", "train"],
        default=None,
        help="saved split (default: test)",
    )
    which.add_argument("--data", type=Path, default=None, metavar="FILE", help="labelled file")
    evaluate.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder of --data (default: <run>/evaluations/<file stem>)",
    )
    evaluate.add_argument(
        "--skip-invalid",
        action="store_true",
        help="with --data: leave out (and list) frames that are invalid, lack the label or "
        "that the model refuses (elements it never saw, ...)",
    )
    evaluate.add_argument("--checkpoint", choices=["best", "last"], default="best")
    add_device_argument(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser(
        "predict",
        usage="atomlens predict [-h] (RUN | --model NAME) FILES... [--out OUT] [--checkpoint "
        "{best,last}] [--device DEVICE]",
        help="predict for new structures; write extxyz and CSV with per-atom attention",
        description="Predict the target of a run, or of a shipped model (--model NAME, see "
        "`atomlens models`), for every structure of the given files (any "
        "format ASE reads). Writes <name>.atomlens.extxyz (info key atomlens_<target>, "
        "per-atom array atomlens_attention), predictions.csv and attention.csv. <name> is the "
        "file's stem; inputs sharing a stem get <parent folder>_<stem> (and _1, _2, ... if "
        "that still clashes). All or nothing: when an input fails, --out is left as it was.",
    )
    predict.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        metavar="RUN FILES",
        help="run directory (or shipped model name), then structure files; with --model, "
        "structure files only",
    )
    add_model_argument(predict)
    predict.add_argument(
        "--out",
        type=Path,
        default=Path("predictions"),
        help="output folder (default: predictions); written only when every input succeeded",
    )
    predict.add_argument("--checkpoint", choices=["best", "last"], default="best")
    add_device_argument(predict)
    predict.set_defaults(handler=_predict)

    graphs = commands.add_parser("graphs", help="build and inspect graph caches").add_subparsers(
        title="graphs commands", metavar="ACTION"
    )
    build = graphs.add_parser(
        "build",
        help="compute neighbour graphs once and cache them on disk",
        description=(
            "Compute Voronoi (SCANN, default) or cutoff graphs for every structure of a "
            "source, in parallel, into a cache entry. Interrupted builds resume."
        ),
    )
    _add_source_arguments(build)
    _add_graph_arguments(build)
    build.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache folder (default: $ATOMLENS_CACHE, else ~/.cache/atomlens)",
    )
    build.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    build.add_argument(
        "--chunk-size",
        type=int,
        default=1000,
        help="structures per resumable chunk (default: 1000)",
    )
    build.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip invalid structures and NaN labels (listed in the manifest)",
    )
    build.set_defaults(handler=_graphs_build)

    show = graphs.add_parser(
        "show",
        help="print the neighbours of every atom of one structure",
        description="Compute the graph of one frame of a structure file and list each "
        "atom's neighbours with distance, solid angle and normalised solid angle.",
    )
    show.add_argument("file", type=Path, help="structure file (any format ASE reads)")
    show.add_argument("--frame", type=int, default=0, help="frame index (default: 0)")
    _add_graph_arguments(show)
    show.set_defaults(handler=_graphs_show)

    ginfo = graphs.add_parser(
        "info",
        help="summarise a cache entry",
        description="Print the manifest summary of a graph cache entry.",
    )
    ginfo.add_argument("path", type=Path, help="cache entry folder (printed by 'graphs build')")
    ginfo.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ginfo.set_defaults(handler=_graphs_info)


def add_set_argument(parser: argparse.ArgumentParser, example: str) -> None:
    """The repeatable ``--set KEY=VALUE`` config override."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. {example}; repeatable",
    )


def _add_graph_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind",
        choices=["voronoi", "cutoff"],
        default="voronoi",
        help="graph kind (default: voronoi)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="graph parameter, e.g. min_solid_angle=0.4, min_solid_angle_ratio=0.2, "
        "max_distance=6.0 (voronoi) or cutoff=5.0 (cutoff); repeatable",
    )


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", help="qm9, matbench:<task>, or a structure file (extxyz, db, ...)"
    )
    parser.add_argument(
        "--targets",
        nargs="+",
        default=None,
        metavar="NAME",
        help="labels to keep (default: all numeric labels)",
    )
    parser.add_argument("--limit", type=int, default=None, help="use only the first N structures")


def _train(args: argparse.Namespace) -> None:
    from atomlens.config import load_config
    from atomlens.errors import AtomlensError
    from atomlens.files import check_output_dir
    from atomlens.training.trainer import train
    from atomlens.zoo import CONFIG, shipped_model

    if (args.config is None) == (args.model is None):
        raise AtomlensError("give a config file or --model NAME (one of the two)")
    path = args.config if args.model is None else shipped_model(args.model).path / CONFIG
    config = load_config(path, device_overrides(args))
    check_output_dir(config.run_dir, f"'{path}': run_dir")
    train(config, overwrite=args.overwrite)


def _demo(args: argparse.Namespace) -> None:
    from importlib.resources import files

    import ase.build
    import yaml

    from atomlens.config import apply_overrides, validate_config
    from atomlens.explain.report import write_report
    from atomlens.files import check_output_dir
    from atomlens.inference import load_model
    from atomlens.training.evaluate import evaluate_run
    from atomlens.training.trainer import train

    _demo_shipped()
    if args.no_train:
        return
    raw = yaml.safe_load(files("atomlens").joinpath("data/demo.yaml").read_text())
    if args.run_dir is not None:
        apply_overrides(raw, [f"run_dir={args.run_dir}"])
    config = validate_config(raw, "demo.yaml")
    check_output_dir(config.run_dir, "--run-dir")
    run = train(config)
    metrics = evaluate_run(run)
    print(
        f"\ntest MAE of HOMO on {metrics['n']} held-out QM9 molecules: "
        f"{1000 * metrics['mae']:.0f} meV (RMSE {1000 * metrics['rmse']:.0f} meV, "
        f"R2 {metrics['r2']:.3f}); parity plot: {run / 'parity_test.png'}"
    )
    predictor = load_model(run)
    (result,) = predictor.predict(ase.build.molecule("CH3CH2OH"))
    _print_prediction("ethanol", result)
    structures, labels = predictor.split_structures("test", n=50, seed=0)
    out = run / "explanations"
    explanations, _ = write_report(
        predictor,
        structures,
        out,
        structure_figures=10,
        faithfulness_mode="atom",
        progress=sys.stderr.isatty(),
        references=labels,
    )
    method = explanations[0].method
    print(f"\n{method} scores of 50 test molecules: open {out / 'index.html'} (works offline)")
    _print_faithfulness(json.loads((out / "faithfulness.json").read_text()))


def _demo_shipped() -> None:
    """Predict ethanol with a shipped molecule model (qm9-homo if shipped) and print it."""
    import ase.build

    from atomlens.inference import load_model
    from atomlens.zoo import shipped_models

    usable = [
        m
        for m in shipped_models().values()
        if m.card["structures"] == "molecules" and {"H", "C", "O"} <= set(m.card["elements"])
    ]
    if not usable:
        print("this installation ships no molecule model (see `atomlens models`)")
        return
    model = next((m for m in usable if m.name == "qm9-homo"), usable[0])
    card = model.card
    unit = f" {card['unit']}" if card["unit"] else ""
    print(
        f"shipped model {model.name} ({card['task']}; test MAE {card['test']['mae']:.3g}"
        f"{unit} on {card['test']['n']} test structures)"
    )
    (result,) = load_model(model.name).predict(ase.build.molecule("CH3CH2OH"))
    _print_prediction("ethanol", result)
    print()


def _print_prediction(label: str, result: Any) -> None:
    """One prediction with its unit and its three most attended atoms."""
    from ase.data import chemical_symbols

    unit = f" {result.unit}" if result.unit else ""
    print(f"{label}: predicted {result.target} {result.value:.3f}{unit}; most attended atoms:")
    for index, z, score in result.top_atoms(3):
        print(f"  atom {index:>2} {chemical_symbols[z]:<2} attention {score:.3f}")


def _evaluate(args: argparse.Namespace) -> None:
    from atomlens.errors import DataError
    from atomlens.files import check_output_dir
    from atomlens.training.evaluate import default_output, evaluate_file

    if args.data is None:
        for given, option in ((args.out, "--out"), (args.skip_invalid, "--skip-invalid")):
            if given:
                raise DataError(f"{option} goes with --data FILE (a split is scored in the run)")
        _evaluate_split(args)
        return
    out = args.out or default_output(args.run, args.data)
    check_output_dir(out, "--out")
    m = evaluate_file(
        args.run,
        args.data,
        out=out,
        checkpoint=args.checkpoint,
        device=args.device,
        skip_invalid=args.skip_invalid,
    )
    _print_metrics(m, f"'{args.data}'")
    if m["skipped"]:
        first = m["skipped"][0]
        print(
            f"skipped {len(m['skipped'])} frame(s), listed in evaluation.json (first: frame "
            f"{first['frame']}: {first['reason']})"
        )
    print(f"wrote {out / 'evaluation.json'}, {out / 'parity.png'} and {out / 'predictions.csv'}")


def _evaluate_split(args: argparse.Namespace) -> None:
    from atomlens.files import check_output_dir
    from atomlens.training.evaluate import evaluate_run

    split = args.split or "test"
    if args.run.is_dir():  # evaluation_<split>.json and the parity plot go into the run
        check_output_dir(args.run, "run")
    m = evaluate_run(args.run, split, args.checkpoint, args.device)
    _print_metrics(m, f"the {split} split")
    print(f"wrote {args.run / f'evaluation_{split}.json'} and {args.run / f'parity_{split}.png'}")


def _print_metrics(m: dict[str, Any], what: str) -> None:
    """The evaluation's one-line summary (MAE, RMSE in the target's unit, R2)."""
    unit = f" {m['unit']}" if m["unit"] else ""
    print(
        f"{m['target']} on {what} ({m['n']} structures, {m['checkpoint']} checkpoint): "
        f"MAE {m['mae']:.4g}{unit}  RMSE {m['rmse']:.4g}{unit}  R2 {m['r2']:.4f}"
    )


def _predict(args: argparse.Namespace) -> None:
    from atomlens.errors import AtomlensError
    from atomlens.files import check_output_dir
    from atomlens.inference import load_model
    from atomlens.predict_files import predict_files

    model, files = model_and_files(args)
    if not files:
        raise AtomlensError("give structure files to predict for")
    check_output_dir(args.out, "--out")
    predictor = load_model(model, args.checkpoint, args.device)
    for path in predict_files(predictor, files, args.out):
        print(f"wrote {path}")


def _data_info(args: argparse.Namespace) -> None:
    import numpy as np

    from atomlens.datasets.sources import load_source
    from atomlens.files import dumps_json

    _check_count(args.limit, "--limit")
    source = load_source(args.source, targets=args.targets, limit=args.limit)
    sizes = np.array([len(s) for s in source.structures])
    periodic = sum(s.is_periodic for s in source.structures)
    numbers = np.concatenate([s.numbers for s in source.structures])
    from ase.data import chemical_symbols

    elements = {
        chemical_symbols[z]: int(c)
        for z, c in zip(*np.unique(numbers, return_counts=True), strict=True)
    }
    labels: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(source.target_names):
        column = source.targets[:, k]
        finite = column[np.isfinite(column)]
        labels[name] = {
            "unit": source.units.get(name, ""),
            "count": int(finite.size),
            "missing": int(column.size - finite.size),
            "mean": float(finite.mean()) if finite.size else None,
            "std": float(finite.std()) if finite.size else None,
            "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
        }
    summary = {
        "source": args.source,
        "structures": len(source),
        "periodic": int(periodic),
        "atoms_per_structure": {
            "mean": float(sizes.mean()),
            "min": int(sizes.min()),
            "max": int(sizes.max()),
        },
        "elements": elements,
        "labels": labels,
    }
    if args.json:
        print(dumps_json(summary))
        return
    print(f"source      {args.source}")
    print(f"structures  {len(source)} ({periodic} periodic, {len(source) - periodic} molecules)")
    print(f"atoms       mean {sizes.mean():.1f}, min {sizes.min()}, max {sizes.max()}")
    print(f"elements    {len(elements)}: " + " ".join(f"{e}:{c}" for e, c in elements.items()))
    print(f"{'label':<28}{'unit':<14}{'count':>8}{'missing':>9}{'mean':>12}{'std':>12}")
    for name, st in labels.items():
        mean = f"{st['mean']:.4g}" if st["mean"] is not None else "-"
        std = f"{st['std']:.4g}" if st["std"] is not None else "-"
        print(f"{name:<28}{st['unit']:<14}{st['count']:>8}{st['missing']:>9}{mean:>12}{std:>12}")


def _check_count(value: int | None, option: str) -> None:
    """An optional count option must be >= 1 (checked before any work)."""
    from atomlens.errors import DataError

    if value is not None and value < 1:
        raise DataError(f"{option} must be >= 1, got {value}")


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    from atomlens.errors import DataError

    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise DataError(f"--param expects NAME=VALUE, got '{pair}'")
        lowered = value.strip().lower()
        if lowered in {"true", "false"}:
            params[name] = lowered == "true"
        elif lowered in {"none", "null"}:
            params[name] = None
        else:
            try:
                params[name] = float(value)
            except ValueError:
                raise DataError(f"--param {name}: '{value}' is not a number") from None
    return params


def _graphs_build(args: argparse.Namespace) -> None:
    from atomlens.datasets.cache import build_graph_cache, make_params
    from atomlens.datasets.dataset import GraphDataset
    from atomlens.datasets.sources import load_source
    from atomlens.files import check_output_dir
    from atomlens.paths import resolve_cache_dir

    params = make_params(args.kind, **_parse_params(args.param))
    _check_count(args.limit, "--limit")
    _check_count(args.workers, "--workers")
    _check_count(args.chunk_size, "--chunk-size")
    check_output_dir(resolve_cache_dir(args.cache_dir), "--cache-dir")
    source = load_source(
        args.source, targets=args.targets, limit=args.limit, skip_invalid=args.skip_invalid
    )
    path = build_graph_cache(
        source,
        args.kind,
        params,
        cache_dir=resolve_cache_dir(args.cache_dir),
        workers=args.workers,
        chunk_size=args.chunk_size,
        skip_invalid=args.skip_invalid,
    )
    print(f"cache entry: {path}")
    _print_summary(GraphDataset(path))


def _graphs_show(args: argparse.Namespace) -> None:
    from ase.data import chemical_symbols

    from atomlens.datasets.cache import make_params
    from atomlens.errors import DataError
    from atomlens.graphs import cutoff_graph, voronoi_graph
    from atomlens.structures import read_structures

    params = make_params(args.kind, **_parse_params(args.param))
    if args.frame < 0:
        raise DataError(f"--frame must be >= 0, got {args.frame}")
    frames = read_structures(args.file, index=f"{args.frame}:{args.frame + 1}")
    structure = next(iter(frames))
    build = voronoi_graph if args.kind == "voronoi" else cutoff_graph
    graph = build(structure, params)
    kind = "crystal" if structure.is_periodic else "molecule"
    print(f"{structure.formula} ({kind}, {len(structure)} atoms, {graph.num_edges} edges)")
    print(
        f"{'atom':>5} {'el':<3}{'nbr':>5} {'el':<3}{'dist/A':>8}{'Omega/sr':>10}{'ratio':>7}  image"
    )
    for k in range(graph.num_edges):
        i, j = int(graph.centers[k]), int(graph.neighbors[k])
        first = k == 0 or graph.centers[k - 1] != i
        head = f"{i:>5} {chemical_symbols[graph.numbers[i]]:<3}" if first else " " * 9
        image = "" if not graph.shifts[k].any() else str(graph.shifts[k].tolist())
        print(
            f"{head}{j:>5} {chemical_symbols[graph.numbers[j]]:<3}{graph.distance[k]:>8.3f}"
            f"{graph.solid_angle[k]:>10.4f}{graph.solid_angle_ratio[k]:>7.3f}  {image}"
        )


def _graphs_info(args: argparse.Namespace) -> None:
    from atomlens.datasets.dataset import GraphDataset
    from atomlens.files import dumps_json

    dataset = GraphDataset(args.path)
    if args.json:
        print(dumps_json({"manifest": dataset.manifest, "summary": dataset.summary()}))
        return
    _print_summary(dataset)


def _print_summary(dataset: Any) -> None:
    from ase.data import chemical_symbols

    from atomlens.errors import describe_location
    from atomlens.files import dumps_json

    s = dataset.summary()
    m = dataset.manifest
    print(
        f"source      {m['source']['name']} ({m['source']['n_records']} records, "
        f"{s['skipped']} skipped)"
    )
    print(f"graph       {s['kind']} {dumps_json(m['graph']['params'], indent=None)}")
    print(
        f"graphs      {s['graphs']}, atoms {s['atoms']} ({s['atoms_per_graph']:.1f}/graph), "
        f"edges {s['edges']}"
    )
    print(f"degree      mean {s['mean_degree']:.2f} neighbours per atom")
    print("elements    " + " ".join(f"{chemical_symbols[z]}:{c}" for z, c in s["elements"].items()))
    print(f"targets     {', '.join(f'{t} [{u}]' if u else t for t, u in m['units'].items())}")
    shards = len(m.get("shards", [m]))  # format 1: one
    print(f"built in    {m['build_seconds']:.1f} s ({shards} shard{'s' * (shards != 1)})")
    for item in m["skipped"][:5]:
        where = (
            describe_location(item["file"], item.get("frame"))
            if item.get("file")
            else f"record {item['record']} ({item['id']})"
        )
        print(f"skipped     {where}: {item['reason']}")
    if len(m["skipped"]) > 5:
        print(f"skipped     ... {len(m['skipped']) - 5} more, listed in the manifest")
