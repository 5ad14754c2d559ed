"""The ``atomlens`` command line. Heavy libraries are imported inside the commands."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from atomlens.errors import AtomlensError

EXAMPLES = """\
examples:
  atomlens data info qm9 --limit 1000
  atomlens data info crystals.extxyz
  atomlens graphs build qm9 --limit 2000 --targets homo lumo
  atomlens graphs build crystals.extxyz --targets formation_energy_per_atom
  atomlens graphs build crystals.extxyz --kind cutoff --param cutoff=5.0
  atomlens graphs show molecule.xyz
  atomlens graphs info .cache/atomlens/qm9_first2000-<key>
  atomlens explain runs/demo molecules.xyz --out explanations --faithfulness
  atomlens explain runs/demo --split test --n 200 --local
  atomlens validate-attention runs/demo --reference homo --n 100
  atomlens featurize li_crystals.extxyz --out features.csv
  atomlens fit-table features.csv --target lnD --model xgboost
  atomlens sisso features.csv --target lnD --dim 3 --ops ""
  atomlens amorphous Li2Si2O5 --atoms 100 --anneal 1500 2000 2500 --diffusion Li
  atomlens diffusion md.extxyz --species Li --temperature 1500 --timestep 10
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        args.handler(args)
    except (AtomlensError, FileNotFoundError) as exc:
        print(f"atomlens: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except KeyboardInterrupt:
        print("atomlens: interrupted (finished work is kept; run again to resume)", file=sys.stderr)
        return 130
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atomlens",
        description="Learn material properties from atomic structure and see which atoms matter.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from atomlens import __version__

    parser.add_argument("--version", action="version", version=f"atomlens {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

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
    train.add_argument("config", type=Path, help="YAML config (see configs/*.yaml)")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. training.epochs=5 or data.limit=2000; repeatable",
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run with a different config in the same run_dir",
    )
    train.set_defaults(handler=_train)

    demo = commands.add_parser(
        "demo",
        help="train a small model on QM9 HOMO, evaluate it, explain one molecule",
        description="Train a small SCANN+ on 5,000 QM9 molecules (a few minutes on 2 "
        "cores), print its test MAE and the most attended atoms of an example molecule.",
    )
    demo.add_argument(
        "--run-dir", type=Path, default=None, help="where to put the run (default: runs/demo)"
    )
    demo.set_defaults(handler=_demo)

    evaluate = commands.add_parser(
        "evaluate",
        help="MAE/RMSE/R^2 of a trained run on its saved split, with a parity plot",
        description="Evaluate a run on its saved test (or val/train) split; writes "
        "evaluation_<split>.json and parity_<split>.png into the run directory.",
    )
    evaluate.add_argument("run", type=Path, help="run directory")
    evaluate.add_argument("--split", choices=["test", "val", "train"], default="test")
    evaluate.add_argument("--checkpoint", choices=["best", "last"], default="best")
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser(
        "predict",
        help="predict for new structures; write extxyz and CSV with per-atom attention",
        description="Predict the run's target for every structure of the given files (any "
        "format ASE reads). Writes <name>.atomlens.extxyz (info key atomlens_<target>, "
        "per-atom array atomlens_attention), predictions.csv and attention.csv.",
    )
    predict.add_argument("run", type=Path, help="run directory")
    predict.add_argument("files", type=Path, nargs="+", help="structure files")
    predict.add_argument(
        "--out", type=Path, default=Path("predictions"), help="output folder (default: predictions)"
    )
    predict.add_argument("--checkpoint", choices=["best", "last"], default="best")
    predict.set_defaults(handler=_predict)

    explain = commands.add_parser(
        "explain",
        help="per-atom attention as extxyz, CSV, an offline HTML viewer and PNG figures",
        description="Explain a run's predictions atom by atom. Structures come from files "
        "(any format ASE reads) or from one of the run's saved splits (--split). Writes "
        "explanations.extxyz (per-atom atomlens_attention), atoms.csv, structures.csv, "
        "index.html (open it in a browser; works offline) and figures/*.png; with "
        "--faithfulness also deletion/insertion curves (faithfulness.json/.csv).",
    )
    explain.add_argument("run", type=Path, help="run directory")
    explain.add_argument("files", type=Path, nargs="*", help="structure files")
    explain.add_argument(
        "--split", choices=["test", "val", "train"], help="explain the run's own split instead"
    )
    explain.add_argument("--n", type=int, help="with --split: a random sample of this many")
    explain.add_argument("--seed", type=int, default=0, help="seed of the --n sample")
    explain.add_argument("--out", type=Path, default=Path("explanations"), help="output folder")
    explain.add_argument("--local", action="store_true", help="add per-layer local attention")
    explain.add_argument(
        "--faithfulness",
        nargs="?",
        const="atom",
        choices=["atom", "readout"],
        help="compute deletion/insertion curves; mask atoms from the input (atom, default) "
        "or from the global pooling only (readout)",
    )
    explain.add_argument(
        "--figures", type=int, default=50, help="per-structure PNGs for at most this many"
    )
    explain.add_argument(
        "--page-limit", type=int, default=2000, help="structures in index.html (default 2000)"
    )
    explain.add_argument("--checkpoint", choices=["best", "last"], default="best")
    explain.set_defaults(handler=_explain)

    validate = commands.add_parser(
        "validate-attention",
        help="rank correlation of attention with first-principles HOMO/LUMO atom weights",
        description="For a sample of the run's test molecules, compute HOMO/LUMO per-atom "
        "weights with PySCF (cached per molecule; reruns resume) and report the Spearman "
        "correlation with the model's attention next to random, centrality and heavy-atom "
        "baselines. Writes <run>/attention_validation_<reference>.json.",
    )
    validate.add_argument("run", type=Path, help="run directory (a molecule model)")
    validate.add_argument(
        "--reference", choices=["homo", "lumo"], help="orbital (default: the run's target)"
    )
    validate.add_argument("--n", type=int, default=100, help="test molecules (default 100)")
    validate.add_argument("--split", choices=["test", "val", "train"], default="test")
    validate.add_argument("--method", default="b3lyp", help="hf or a DFT functional")
    validate.add_argument("--basis", default="6-31g", help="Gaussian basis set")
    validate.add_argument("--population", choices=["lowdin", "mulliken"], default="lowdin")
    validate.add_argument("--seed", type=int, default=0)
    validate.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".cache/atomlens/orbitals"),
        help="where orbital weights are kept between runs",
    )
    validate.add_argument("--checkpoint", choices=["best", "last"], default="best")
    validate.set_defaults(handler=_validate_attention)

    sisso = commands.add_parser(
        "sisso",
        help="symbolic descriptors: SISSO (operator feature space, SIS + exact L0)",
        description="Find 1..D-term linear models of a table's target over features built "
        "from its numeric columns with operators, by sure-independence screening and exact "
        "L0 on the screened subspace. --ops '' gives plain best-subset regression. Each CV "
        "fold reruns the whole search on its training rows.",
    )
    sisso.add_argument("table", type=Path, help="CSV with a header row")
    sisso.add_argument("--target", required=True, help="column to model")
    sisso.add_argument("--dim", type=int, default=3, help="largest descriptor dimension D")
    sisso.add_argument(
        "--ops",
        default="+,-,*,/,exp,log,^-1,^2,^3,sqrt",
        help="comma-separated operators; '' for none (default: all ten)",
    )
    sisso.add_argument("--complexity", type=int, default=1, help="operators per feature")
    sisso.add_argument("--sis-size", type=int, default=20, help="candidates kept per dimension")
    sisso.add_argument("--cv", type=int, default=5, help="folds (0: no cross-validation)")
    sisso.add_argument("--group-by", help="column grouping rows in CV (e.g. composition)")
    sisso.add_argument("--exclude", nargs="*", default=[], help="columns that are not features")
    sisso.add_argument("--seed", type=int, default=0)
    sisso.add_argument("--out", type=Path, help="JSON report (default: <table>.sisso.json)")
    sisso.set_defaults(handler=_sisso)

    diffusion = commands.add_parser(
        "diffusion",
        help="tracer diffusivity from an MD trajectory (MSD by FFT, drift removed)",
        description="Unwrap a constant-cell trajectory (any format ASE reads), remove the "
        "framework's drift, compute the MSD of one species over all time origins and fit D "
        "in the diffusive regime (automatic window or --fit-range). Prints D with its "
        "block-averaged error, per-axis D and the Nernst-Einstein conductivity; writes "
        "diffusion.json and msd.png.",
    )
    diffusion.add_argument("trajectory", type=Path)
    diffusion.add_argument("--species", default="Li")
    diffusion.add_argument("--temperature", type=float, required=True, help="K")
    diffusion.add_argument("--timestep", type=float, required=True, help="fs between frames")
    diffusion.add_argument("--step", type=int, default=1, help="use every step-th frame")
    diffusion.add_argument(
        "--fit-range",
        type=float,
        nargs=2,
        metavar=("START", "END"),
        help="fit window in ps (default: automatic)",
    )
    diffusion.add_argument("--skip", type=float, default=0.0, help="ps ignored by the auto window")
    diffusion.add_argument("--blocks", type=int, default=5, help="blocks for the error")
    diffusion.add_argument("--charge", type=float, default=1.0, help="ion charge in e")
    diffusion.add_argument("--keep-drift", action="store_true", help="do not remove drift")
    diffusion.add_argument("--out", type=Path, default=Path("diffusion"))
    diffusion.set_defaults(handler=_diffusion)

    arrhenius = commands.add_parser(
        "arrhenius",
        help="activation energy from diffusivities at several temperatures",
        description="Fit ln D = ln D0 - Ea/(kB T) over diffusion.json files written by "
        "`atomlens diffusion` (weighted by their errors); print Ea, D0 and D extrapolated "
        "to --at; write arrhenius.json and arrhenius.png.",
    )
    arrhenius.add_argument("results", type=Path, nargs="+", help="diffusion.json files")
    arrhenius.add_argument("--at", type=float, default=300.0, help="extrapolate to T (K)")
    arrhenius.add_argument("--out", type=Path, default=Path("arrhenius"))
    arrhenius.set_defaults(handler=_arrhenius)

    amorphous = commands.add_parser(
        "amorphous",
        help="amorphous cells by melt-quench MD with CHGNet (offline); D and Ea optional",
        description="Random packing of COMPOSITION at an estimated density, melt (NVT "
        "Langevin), optional volume equilibration (Birch-Murnaghan P(V) at 0.8/1.0/1.2 V), "
        "then anneal at each --anneal temperature. Segments are checkpointed: rerun the same "
        "command to continue a killed run. With --diffusion Li, D at each anneal temperature "
        "and an Arrhenius fit.",
    )
    amorphous.add_argument("composition", help="e.g. Li2Si2O5")
    amorphous.add_argument("--atoms", type=int, default=100, help="approximate atom count")
    amorphous.add_argument("--potential", default="chgnet", choices=["chgnet", "emt"])
    amorphous.add_argument("--melt", type=float, default=5000.0, help="melt temperature (K)")
    amorphous.add_argument("--melt-steps", type=int, default=2000)
    amorphous.add_argument("--anneal", type=float, nargs="*", default=[], help="K")
    amorphous.add_argument("--anneal-steps", type=int, default=2000)
    amorphous.add_argument("--equilibrate-volume", action="store_true")
    amorphous.add_argument("--volume-steps", type=int, default=300)
    amorphous.add_argument("--timestep", type=float, default=2.0, help="fs")
    amorphous.add_argument("--segment-steps", type=int, default=100)
    amorphous.add_argument("--interval", type=int, default=10, help="steps between frames")
    amorphous.add_argument("--diffusion", metavar="SPECIES", help="D of SPECIES per anneal")
    amorphous.add_argument("--seed", type=int, default=0)
    amorphous.add_argument("--out", type=Path, default=Path("amorphous"))
    amorphous.set_defaults(handler=_amorphous)

    rdf = commands.add_parser(
        "rdf",
        help="partial and total radial distribution functions (and R^2 between two runs)",
    )
    rdf.add_argument("trajectory", type=Path)
    rdf.add_argument("--compare", type=Path, help="a second trajectory: R^2 of its RDFs")
    rdf.add_argument("--r-max", type=float, default=6.0)
    rdf.add_argument("--bins", type=int, default=120)
    rdf.add_argument("--every", type=int, default=1, help="use every n-th frame")
    rdf.add_argument("--out", type=Path, default=Path("rdf"))
    rdf.set_defaults(handler=_rdf)

    featurize = commands.add_parser(
        "featurize",
        help="descriptor table (CSV) of structures: composition and Li-transport features",
        description="Compute descriptors for every structure of the given files: 'composition' "
        "(electronegativity, radii, mass, elemental moduli, ...), 'li-transport' (Voronoi Li "
        "neighbour counts, bond ionicities, shortest distances, packing, straight-line path) "
        "or 'all'. Numeric labels of each structure are kept as columns; structures that "
        "fail are listed by id in <out>.failures.csv and skipped.",
    )
    featurize.add_argument("files", type=Path, nargs="+", help="structure files")
    featurize.add_argument(
        "--set",
        dest="feature_set",
        choices=["all", "composition", "li-transport"],
        default="all",
    )
    featurize.add_argument("--out", type=Path, default=Path("features.csv"))
    featurize.add_argument("--workers", type=int, default=2)
    featurize.set_defaults(handler=_featurize)

    fit = commands.add_parser(
        "fit-table",
        help="random forest / XGBoost on a feature table, with honest cross-validation",
        description="Cross-validate a random forest or XGBoost model (the paper's settings) on "
        "a CSV table, grouped by composition by default (--cv kfold: plain rows; --cv holdout: "
        "the paper's 85/15 row split). Writes scores (per fold and mean), out-of-fold "
        "predictions with uncertainty, impurity and permutation importances, parity and "
        "importance plots, and the model refitted on all rows (for predict-table).",
    )
    fit.add_argument("table", type=Path, help="CSV with a header row")
    fit.add_argument("--target", required=True, help="column to predict")
    fit.add_argument("--model", choices=["rf", "xgboost"], default="rf")
    fit.add_argument("--cv", choices=["grouped", "kfold", "holdout"], default="grouped")
    fit.add_argument("--group-by", default="composition", help="group column for --cv grouped")
    fit.add_argument("--folds", type=int, default=5)
    fit.add_argument("--test-fraction", type=float, default=0.15, help="for --cv holdout")
    fit.add_argument("--exclude", nargs="*", default=[], help="columns that are not features")
    fit.add_argument("--seed", type=int, default=62, help="the paper's seed by default")
    fit.add_argument(
        "--permutation-repeats", type=int, default=5, help="shuffles per feature and fold"
    )
    fit.add_argument("--out", type=Path, default=Path("table_model"), help="output folder")
    fit.set_defaults(handler=_fit_table)

    predict_table = commands.add_parser(
        "predict-table",
        help="predict a table with a model saved by fit-table",
        description="Predict every row of a CSV table with a model from fit-table; writes "
        "the prediction and its uncertainty per row.",
    )
    predict_table.add_argument("model", type=Path, help="fit-table output folder")
    predict_table.add_argument("table", type=Path, help="CSV with the model's feature columns")
    predict_table.add_argument("--out", type=Path, default=Path("predictions.csv"))
    predict_table.set_defaults(handler=_predict_table)

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
        help="cache folder (default: $ATOMLENS_CACHE or .cache/atomlens)",
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
    return parser


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
    from atomlens.training.trainer import train

    train(load_config(args.config, args.overrides), overwrite=args.overwrite)


def _demo(args: argparse.Namespace) -> None:
    from importlib.resources import files

    import ase.build
    import yaml
    from ase.data import chemical_symbols

    from atomlens.config import apply_overrides, validate_config
    from atomlens.explain.report import write_report
    from atomlens.inference import load_model
    from atomlens.training.evaluate import evaluate_run
    from atomlens.training.trainer import train

    raw = yaml.safe_load(files("atomlens").joinpath("data/demo.yaml").read_text())
    if args.run_dir is not None:
        apply_overrides(raw, [f"run_dir={args.run_dir}"])
    config = validate_config(raw, "demo.yaml")
    run = train(config)
    metrics = evaluate_run(run)
    print(
        f"\ntest MAE of HOMO on {metrics['n']} held-out QM9 molecules: "
        f"{1000 * metrics['mae']:.0f} meV (RMSE {1000 * metrics['rmse']:.0f} meV, "
        f"R2 {metrics['r2']:.3f}); parity plot: {run / 'parity_test.png'}"
    )
    predictor = load_model(run)
    molecule = ase.build.molecule("CH3CH2OH")
    (result,) = predictor.predict(molecule)
    print(f"ethanol: predicted HOMO {result.value:.2f} eV; most attended atoms:")
    for index, z, score in result.top_atoms(3):
        print(f"  atom {index:>2} {chemical_symbols[z]:<2} attention {score:.3f}")
    structures, _ = predictor.split_structures("test", n=50, seed=0)
    out = run / "explanations"
    write_report(
        predictor,
        structures,
        out,
        structure_figures=10,
        faithfulness_mode="atom",
        progress=sys.stderr.isatty(),
    )
    print(f"\nattention of 50 test molecules: open {out / 'index.html'} (works offline)")
    _print_faithfulness(json.loads((out / "faithfulness.json").read_text()))


def _evaluate(args: argparse.Namespace) -> None:
    from atomlens.training.evaluate import evaluate_run

    m = evaluate_run(args.run, args.split, args.checkpoint)
    unit = f" {m['unit']}" if m["unit"] else ""
    print(
        f"{m['target']} on the {m['split']} split ({m['n']} structures, {m['checkpoint']} "
        f"checkpoint): MAE {m['mae']:.4g}{unit}  RMSE {m['rmse']:.4g}{unit}  R2 {m['r2']:.4f}"
    )
    print(
        f"wrote {args.run / f'evaluation_{args.split}.json'} and "
        f"{args.run / f'parity_{args.split}.png'}"
    )


def _predict(args: argparse.Namespace) -> None:
    from atomlens.inference import load_model
    from atomlens.predict_files import predict_files

    predictor = load_model(args.run, args.checkpoint)
    for path in predict_files(predictor, args.files, args.out):
        print(f"wrote {path}")


def _explain(args: argparse.Namespace) -> None:
    from atomlens.explain.report import read_inputs, write_report
    from atomlens.inference import load_model

    if bool(args.files) == bool(args.split):
        raise AtomlensError("give structure files or --split (one of the two)")
    predictor = load_model(args.run, args.checkpoint)
    if args.split:
        structures, _ = predictor.split_structures(args.split, args.n, args.seed)
    else:
        structures = read_inputs(args.files)
    explanations, written = write_report(
        predictor,
        structures,
        args.out,
        local=args.local,
        structure_figures=args.figures,
        page_limit=args.page_limit,
        faithfulness_mode=args.faithfulness,
        progress=sys.stderr.isatty(),
    )
    print(f"explained {len(explanations)} structure(s); open {args.out / 'index.html'}")
    if args.figures < len(explanations):
        print(f"per-structure figures for the first {args.figures} (raise with --figures)")
    if args.page_limit < len(explanations):
        print(
            f"index.html shows the first {args.page_limit} (raise with --page-limit); "
            "the extxyz and CSV files hold all"
        )
    print(f"wrote {len(written)} files to {args.out}")
    if args.faithfulness:
        summary = json.loads((args.out / "faithfulness.json").read_text())
        _print_faithfulness(summary)


def _print_faithfulness(summary: dict) -> None:
    unit = summary["unit"] or "target unit"
    print(
        f"faithfulness ({summary['mode']} mask, {summary['n_structures']} structures; mean "
        f"|change of prediction| in {unit}, area over fractions 0..1):"
    )
    print(f"  {'order':<10} {'deletion AUC':>13} {'insertion AUC':>14}")
    for order in ("attention", "random", "least"):
        print(
            f"  {order:<10} {summary['deletion_auc'][order]:>13.4g} "
            f"{summary['insertion_auc'][order]:>14.4g}"
        )
    print(
        f"  attention beats random on {summary['deletion_win_rate_vs_random']:.0%} of "
        f"structures (deletion) and {summary['insertion_win_rate_vs_random']:.0%} (insertion)"
    )


def _validate_attention(args: argparse.Namespace) -> None:
    from atomlens.explain.attention import explain
    from atomlens.explain.validation import validate_attention
    from atomlens.files import write_text_atomic
    from atomlens.inference import load_model

    predictor = load_model(args.run, args.checkpoint)
    reference = args.reference or predictor.target
    if reference not in ("homo", "lumo"):
        raise AtomlensError(
            f"the run predicts {predictor.target!r}; choose --reference homo or lumo"
        )
    structures, _ = predictor.split_structures(args.split, args.n, args.seed)
    if any(s.is_periodic for s in structures):
        raise AtomlensError("validate-attention compares with molecular orbitals: molecules only")
    report = validate_attention(
        explain(predictor, structures),
        reference,
        args.cache_dir,
        method=args.method,
        basis=args.basis,
        population=args.population,
        seed=args.seed,
        progress=sys.stderr.isatty(),
    )
    summary = report.summary() | {"run": str(args.run), "model_target": predictor.target}
    path = args.run / f"attention_validation_{reference}.json"
    write_text_atomic(path, json.dumps(summary, indent=2) + "\n")
    print(
        f"Spearman correlation with {args.method}/{args.basis} {reference.upper()} "
        f"{args.population} atom weights, {summary['n_molecules']} {args.split} molecules:"
    )
    print(
        f"  {'scores':<11} {'mean':>7} {'± sem':>7} {'median':>7} {'top-1':>6}   "
        "heavy atoms only: mean ± sem"
    )
    for name in ("attention", "random", "centrality", "heavy_atom"):
        row = summary[name]
        print(
            f"  {name:<11} {row['spearman_mean']:>7.3f} {row['spearman_sem']:>7.3f} "
            f"{row['spearman_median']:>7.3f} {row['top1_rate']:>6.0%}   "
            f"{row['spearman_heavy_mean']:>7.3f} {row['spearman_heavy_sem']:>6.3f}"
        )
    print(f"wrote {path}")


def _sisso(args: argparse.Namespace) -> None:
    import time

    import numpy as np

    from atomlens.descriptors import sisso
    from atomlens.descriptors.splits import kfold
    from atomlens.descriptors.table import read_table
    from atomlens.files import write_text_atomic

    table = read_table(args.table, args.target, group_by=args.group_by, exclude=tuple(args.exclude))
    try:
        settings = {
            "ops": sisso.parse_ops(args.ops),
            "complexity": args.complexity,
            "max_dim": args.dim,
            "sis_size": args.sis_size,
        }
    except ValueError as exc:
        raise AtomlensError(str(exc)) from None
    start = time.perf_counter()
    result = sisso.sisso(table.x, table.y, table.feature_names, **settings)
    seconds = time.perf_counter() - start
    cv = {}
    if args.cv:
        folds = kfold(len(table.y), args.cv, args.seed, table.groups)
        cv = sisso.cross_validate(table.x, table.y, table.feature_names, folds, **settings)
    names = table.feature_names
    print(
        f"{len(table.y)} rows, {len(names)} primary features, {result.n_candidates:,} "
        f"candidate features; screening {result.screening_seconds:.2f} s, L0 "
        f"{result.l0_seconds:.2f} s over {result.l0_subsets:,} subsets"
    )
    models = []
    for dim, model in enumerate(result.models, start=1):
        formula = sisso.display(model.formula(args.target), names)
        fold_rmse = cv.get(dim, [])
        cv_text = (
            f"  CV RMSE {np.mean(fold_rmse):.4g} ± {np.std(fold_rmse):.2g}" if fold_rmse else ""
        )
        print(f"D={dim}: {formula}\n     RMSE {model.rmse:.4g}  R2 {model.r2:.4f}{cv_text}")
        models.append(
            {
                "dimension": dim,
                "formula": formula,
                "features": [sisso.display(f, names) for f in model.features],
                "features_raw": model.features,
                "coefficients": model.coefficients.tolist(),
                "intercept": model.intercept,
                "rmse": model.rmse,
                "r2": model.r2,
                "cv_rmse_folds": fold_rmse,
            }
        )
    report = {
        "table": str(args.table),
        "target": args.target,
        "primary_features": names,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "cv_folds": args.cv,
        "group_by": args.group_by,
        "n_candidates": result.n_candidates,
        "seconds": seconds,
        "models": models,
    }
    out = args.out or args.table.with_suffix(".sisso.json")
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


def _diffusion(args: argparse.Namespace) -> None:
    from atomlens.diffusion.msd import diffusivity, plot_msd, read_trajectory
    from atomlens.files import write_text_atomic

    traj = read_trajectory(args.trajectory, args.timestep, args.step)
    result = diffusivity(
        traj,
        args.species,
        args.temperature,
        fit_range_ps=tuple(args.fit_range) if args.fit_range else None,
        skip_ps=args.skip,
        blocks=args.blocks,
        charge=args.charge,
        remove_drift=not args.keep_drift,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    summary = result.summary() | {
        "trajectory": str(args.trajectory),
        "frames": traj.n_frames,
        "timestep_fs": traj.timestep_fs,
    }
    write_text_atomic(args.out / "diffusion.json", json.dumps(summary, indent=2) + "\n")
    plot_msd(result, args.out / "msd.png")
    lo, hi = result.fit_range_ps
    axes = ", ".join(f"{v:.3g}" for v in result.diffusivity_axes)
    print(
        f"{args.species} at {args.temperature:g} K ({traj.n_frames} frames, fit {lo:.3g}-{hi:.3g}"
        f" ps): D = {result.diffusivity:.4g} ± {result.diffusivity_std:.2g} cm2/s "
        f"(x, y, z: {axes}); sigma = {result.conductivity:.4g} S/cm"
    )
    print(f"wrote {args.out / 'diffusion.json'} and {args.out / 'msd.png'}")


def _arrhenius(args: argparse.Namespace) -> None:
    import numpy as np

    from atomlens.diffusion.arrhenius import fit_arrhenius, plot_arrhenius
    from atomlens.files import write_text_atomic

    rows = []
    for path in args.results:
        try:
            data = json.loads(path.read_text())
            rows.append(
                (
                    data["temperature_K"],
                    data["diffusivity_cm2_s"],
                    data.get("diffusivity_std_cm2_s", float("nan")),
                )
            )
        except (OSError, ValueError, KeyError) as exc:
            raise AtomlensError(f"'{path}' is not a diffusion.json: {exc}") from None
    t, d, err = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    fit = fit_arrhenius(t, d, err if np.all(np.isfinite(err)) else None)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = fit.summary(args.at)
    write_text_atomic(args.out / "arrhenius.json", json.dumps(summary, indent=2) + "\n")
    plot_arrhenius(fit, args.out / "arrhenius.png", args.at)
    factor = np.exp(summary["extrapolated_lnD_std"])
    print(
        f"Ea = {fit.activation_energy:.4f} ± {fit.activation_energy_std:.4f} eV, "
        f"D0 = {fit.prefactor:.4g} cm2/s over {len(t)} temperatures; D({args.at:g} K) = "
        f"{summary['extrapolated_D_cm2_s']:.3g} cm2/s (x/÷ {factor:.2g})"
    )
    print(f"wrote {args.out / 'arrhenius.json'} and {args.out / 'arrhenius.png'}")


def _amorphous(args: argparse.Namespace) -> None:
    import time

    from atomlens.diffusion.amorphous import AmorphousRun, make_calculator, melt_quench
    from atomlens.files import write_text_atomic

    start = time.perf_counter()
    run = AmorphousRun(
        args.out,
        timestep_fs=args.timestep,
        segment_steps=args.segment_steps,
        interval=args.interval,
        seed=args.seed,
        progress=sys.stderr.isatty(),
    )
    outputs = melt_quench(
        args.composition,
        args.atoms,
        run,
        make_calculator(args.potential),
        melt_temperature=args.melt,
        melt_steps=args.melt_steps,
        anneal_temperatures=tuple(args.anneal),
        anneal_steps=args.anneal_steps,
        equilibrate_volume=args.equilibrate_volume,
        volume_steps=args.volume_steps,
    )
    summary: dict[str, Any] = {
        "composition": args.composition,
        "trajectories": {k: str(v) for k, v in outputs.items()},
    }
    for name, path in outputs.items():
        print(f"{name}: {path}")
    if args.diffusion and args.anneal:
        from atomlens.diffusion.arrhenius import fit_arrhenius
        from atomlens.diffusion.msd import diffusivity, read_trajectory

        results = []
        for temperature in args.anneal:
            traj = read_trajectory(
                outputs[f"anneal{int(temperature)}"], args.timestep * args.interval
            )
            result = diffusivity(traj, args.diffusion, temperature)
            results.append(result)
            print(
                f"D({args.diffusion}, {temperature:g} K) = {result.diffusivity:.3g} ± "
                f"{result.diffusivity_std:.2g} cm2/s"
            )
        summary["diffusion"] = [r.summary() for r in results]
        if len(results) >= 2:
            fit = fit_arrhenius([r.temperature for r in results], [r.diffusivity for r in results])
            summary["arrhenius"] = fit.summary(300.0)
            print(f"Ea = {fit.activation_energy:.3f} ± {fit.activation_energy_std:.3f} eV")
    summary["seconds"] = time.perf_counter() - start
    write_text_atomic(args.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out / 'summary.json'} ({summary['seconds']:.0f} s)")


def _rdf(args: argparse.Namespace) -> None:
    from atomlens.diffusion.msd import read_trajectory
    from atomlens.diffusion.rdf import partial_rdfs, plot_rdfs, rdf_r2
    from atomlens.explain.tables import write_csv
    from atomlens.files import write_text_atomic

    r, rdfs = partial_rdfs(read_trajectory(args.trajectory, 1.0), args.r_max, args.bins, args.every)
    args.out.mkdir(parents=True, exist_ok=True)
    names = list(rdfs)
    write_csv(
        args.out / "rdf.csv",
        ["r", *names],
        [[float(r[k]), *(float(rdfs[n][k]) for n in names)] for k in range(len(r))],
    )
    plot_rdfs(r, rdfs, args.out / "rdf.png")
    print(f"RDFs {', '.join(names)}; wrote {args.out / 'rdf.csv'} and rdf.png")
    if args.compare:
        _, other = partial_rdfs(
            read_trajectory(args.compare, 1.0), args.r_max, args.bins, args.every
        )
        scores = rdf_r2(rdfs, other)
        write_text_atomic(args.out / "rdf_r2.json", json.dumps(scores, indent=2) + "\n")
        print(
            "R2 of the second run's RDFs: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
        )


def _featurize(args: argparse.Namespace) -> None:
    from atomlens.descriptors.table_builder import feature_rows
    from atomlens.explain.report import read_inputs
    from atomlens.explain.tables import write_csv

    structures = read_inputs(args.files)
    rows, failures = feature_rows(
        structures, args.feature_set, workers=args.workers, progress=sys.stderr.isatty()
    )
    if failures:
        failed = args.out.with_suffix(".failures.csv")
        write_csv(failed, ["id", "reason"], [list(f) for f in failures])
        print(
            f"{len(failures)} structure(s) skipped, listed in {failed}; e.g. {failures[0][0]}: "
            f"{failures[0][1]}"
        )
    if not rows:
        raise AtomlensError("no structure could be featurized")
    header = list(dict.fromkeys(key for row in rows for key in row))
    write_csv(args.out, header, [[row.get(k, "") for k in header] for row in rows])
    print(f"{len(rows)} structures x {len(header) - 2} columns; wrote {args.out}")


def _fit_table(args: argparse.Namespace) -> None:
    import numpy as np

    from atomlens.descriptors import figures, models
    from atomlens.descriptors.splits import kfold, row_split
    from atomlens.descriptors.table import read_table
    from atomlens.explain.tables import write_csv
    from atomlens.files import write_text_atomic

    group_by = args.group_by if args.cv == "grouped" else None
    table = read_table(
        args.table, args.target, group_by=group_by, exclude=(*args.exclude, args.group_by)
    )
    if args.cv == "holdout":
        folds = [row_split(len(table.y), args.test_fraction, args.seed)]
    else:
        folds = kfold(len(table.y), args.folds, args.seed, table.groups)
    report = models.cross_validate(
        table,
        args.model,
        folds,
        args.cv,
        seed=args.seed,
        permutation_repeats=args.permutation_repeats,
        progress=sys.stderr.isatty(),
    )
    summary = report.summary() | {
        "table": str(args.table),
        "target": args.target,
        "n_rows": len(table.y),
        "group_by": group_by,
    }
    if table.groups is None and args.group_by:
        summary["leak_note"] = "rows split without groups: a composition can be in train and test"
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    summary["folds"] = report.folds
    write_text_atomic(out / "scores.json", json.dumps(summary, indent=2) + "\n")
    tested = report.tested
    write_csv(
        out / "predictions.csv",
        ["id", args.target, "predicted", "uncertainty"],
        [
            [i, float(t), float(p), float(u)]
            for i, t, p, u in zip(
                table.ids[tested],
                table.y[tested],
                report.predicted[tested],
                report.uncertainty[tested],
                strict=True,
            )
        ],
    )
    order = np.argsort(-report.permutation_importance)
    write_csv(
        out / "importances.csv",
        ["feature", "permutation", "impurity"],
        [
            [
                table.feature_names[k],
                float(report.permutation_importance[k]),
                float(report.impurity_importance[k]),
            ]
            for k in order
        ],
    )
    title = f"{args.model}, {args.cv} CV: R2 {summary['r2']:.3f}, MAE {summary['mae']:.3g}"
    figures.plot_parity(
        table.y[tested],
        report.predicted[tested],
        report.uncertainty[tested],
        title,
        out / "parity.png",
    )
    figures.plot_importances(
        table.feature_names,
        report.impurity_importance,
        report.permutation_importance,
        out / "importances.png",
    )
    final = models.Ensemble(args.model, args.seed).fit(table.x, table.y)
    models.save_model(final, table, out / "model")
    spread = f" ± {summary['r2_std']:.3f}" if len(folds) > 1 else ""
    print(
        f"{args.model} on {len(table.y)} rows, {len(table.feature_names)} features, "
        f"{args.cv} CV ({len(folds)} fold(s)): R2 {summary['r2']:.3f}{spread}  "
        f"MAE {summary['mae']:.4g}  RMSE {summary['rmse']:.4g}"
    )
    top = ", ".join(table.feature_names[k] for k in order[:5])
    print(f"most important (permutation): {top}")
    print(
        f"wrote {out}/scores.json, predictions.csv, importances.csv, parity.png, "
        "importances.png and model/"
    )


def _predict_table(args: argparse.Namespace) -> None:
    import pandas as pd

    from atomlens.descriptors.models import load_model
    from atomlens.explain.tables import write_csv

    ensemble, meta = load_model(args.model)
    frame = pd.read_csv(args.table)
    missing = [f for f in meta["features"] if f not in frame.columns]
    if missing:
        raise AtomlensError(f"'{args.table}' lacks the model's feature(s): {', '.join(missing)}")
    x = frame[meta["features"]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = [i for i, row in enumerate(x) if not all(map(math.isfinite, row))]
    if bad:
        raise AtomlensError(f"'{args.table}' row {bad[0] + 2}: a feature is not a finite number")
    mean, spread = ensemble.predict(x)
    ids = frame["id"].astype(str) if "id" in frame.columns else range(len(frame))
    write_csv(
        args.out,
        ["id", f"predicted_{meta['target']}", "uncertainty"],
        [[i, float(m), float(s)] for i, m, s in zip(ids, mean, spread, strict=True)],
    )
    print(f"predicted {len(mean)} rows; wrote {args.out}")


def _data_info(args: argparse.Namespace) -> None:
    import numpy as np

    from atomlens.datasets.sources import load_source

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
        print(json.dumps(summary, indent=2))
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
    from atomlens.datasets.cache import DEFAULT_CACHE_DIR, build_graph_cache, make_params
    from atomlens.datasets.dataset import GraphDataset
    from atomlens.datasets.sources import load_source

    params = make_params(args.kind, **_parse_params(args.param))
    source = load_source(args.source, targets=args.targets, limit=args.limit)
    path = build_graph_cache(
        source,
        args.kind,
        params,
        cache_dir=args.cache_dir or DEFAULT_CACHE_DIR,
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

    dataset = GraphDataset(args.path)
    if args.json:
        print(json.dumps({"manifest": dataset.manifest, "summary": dataset.summary()}, indent=2))
        return
    _print_summary(dataset)


def _print_summary(dataset: Any) -> None:
    from ase.data import chemical_symbols

    s = dataset.summary()
    m = dataset.manifest
    print(
        f"source      {m['source']['name']} ({m['source']['n_records']} records, "
        f"{s['skipped']} skipped)"
    )
    print(f"graph       {s['kind']} {json.dumps(m['graph']['params'])}")
    print(
        f"graphs      {s['graphs']}, atoms {s['atoms']} ({s['atoms_per_graph']:.1f}/graph), "
        f"edges {s['edges']}"
    )
    print(f"degree      mean {s['mean_degree']:.2f} neighbours per atom")
    print("elements    " + " ".join(f"{chemical_symbols[z]}:{c}" for z, c in s["elements"].items()))
    print(f"targets     {', '.join(f'{t} [{u}]' if u else t for t, u in m['units'].items())}")
    print(f"built in    {m['build_seconds']:.1f} s")
    for item in m["skipped"][:5]:
        print(f"skipped     record {item['record']} ({item['id']}): {item['reason']}")


if __name__ == "__main__":
    sys.exit(main())
