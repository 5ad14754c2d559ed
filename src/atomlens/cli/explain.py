"""Commands that explain predictions: explain, validate-attention."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from atomlens.cli.options import add_device_argument, add_model_argument, model_and_files
from atomlens.errors import AtomlensError

# Names of atomlens.explain.attribution.METHODS, listed here to keep `atomlens --help` light.
ATTRIBUTION_METHODS = (
    "attention",
    "rollout",
    "gradient_input",
    "integrated_gradients",
    "occlusion",
    "shapley",
)


def register(commands: Any) -> None:
    """Add this module's commands to the ``atomlens`` parser."""
    explain = commands.add_parser(
        "explain",
        help="per-atom attention as extxyz, CSV, an offline HTML viewer and PNG figures",
        description="Explain the predictions of a run, or of a shipped model (--model NAME), "
        "atom by atom. Structures come from files "
        "(any format ASE reads) or from one of the run's saved splits (--split). Writes "
        "explanations.extxyz (per-atom atomlens_attention), atoms.csv, structures.csv, "
        "index.html (open it in a browser; works offline), figures/*.png and, for molecules "
        "with RDKit (extra depict), 2-D depictions/*.svg; with "
        "--faithfulness also deletion/insertion curves (faithfulness.json/.csv).",
    )
    explain.add_argument(
        "inputs",
        type=Path,
        nargs="*",
        metavar="RUN FILES",
        help="run directory (or shipped model name), then structure files (none with "
        "--split); with --model, structure files only",
    )
    add_model_argument(explain)
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
        "--method",
        choices=list(ATTRIBUTION_METHODS),
        help="per-atom scores written beside the attention (column atomlens_<method>), "
        "colouring the viewer and ordering the faithfulness curves: attention, rollout "
        "(through the local layers; the default where the model has local attention, as "
        "it ranked best in validate-attention, else attention), gradient_input, "
        "integrated_gradients, occlusion (atom removed), shapley (sampled)",
    )
    _add_method_options(explain)
    explain.add_argument(
        "--figures", type=int, default=50, help="per-structure PNGs for at most this many"
    )
    explain.add_argument(
        "--page-limit", type=int, default=2000, help="structures in index.html (default 2000)"
    )
    explain.add_argument("--checkpoint", choices=["best", "last"], default="best")
    add_device_argument(explain)
    explain.set_defaults(handler=_explain)

    validate = commands.add_parser(
        "validate-attention",
        aliases=["benchmark-explanations"],
        help="benchmark of explanations: attribution methods against chemistry baselines "
        "(HOMO/LUMO atom weights, faithfulness)",
        description="For a sample of the run's test molecules, score each attribution method "
        "and the chemistry baselines (heavy atom, atomic number, fewest attached H, "
        "centrality, random) by the Spearman correlation with PySCF HOMO/LUMO per-atom "
        "weights (all atoms and heavy atoms only), the top-1 rate, and the faithfulness "
        "deletion/insertion areas, each with a bootstrap 95% CI and a paired bootstrap CI "
        "against the best baseline. Orbital weights and method scores are cached in --out, "
        "so a rerun, or another model with the same --out, resumes. Writes "
        "benchmark_<label>_<reference>.json/.csv/.md to --out.",
    )
    validate.add_argument("run", type=Path, help="run directory (a molecule model)")
    validate.add_argument(
        "--reference", choices=["homo", "lumo"], help="orbital (default: the run's target)"
    )
    validate.add_argument(
        "--molecules",
        "--n",
        dest="molecules",
        type=int,
        default=100,
        help="molecules sampled from --split (default 100)",
    )
    validate.add_argument(
        "--methods",
        help="comma-separated attribution methods (default: all the model supports: "
        + ", ".join(ATTRIBUTION_METHODS)
        + ")",
    )
    validate.add_argument(
        "--out",
        type=Path,
        default=Path("explanation_benchmark"),
        help="output folder, also holding the orbital and score caches "
        "(default explanation_benchmark)",
    )
    validate.add_argument(
        "--label", help="name of this model in the output files (default: the run folder name)"
    )
    validate.add_argument("--split", choices=["test", "val", "train"], default="test")
    validate.add_argument(
        "--functional", default="b3lyp", help="hf or a DFT functional (default b3lyp)"
    )
    validate.add_argument("--basis", default="6-31g", help="Gaussian basis set (default 6-31g)")
    validate.add_argument("--population", choices=["lowdin", "mulliken"], default="lowdin")
    _add_method_options(validate)
    validate.add_argument(
        "--random-draws", type=int, default=5, help="draws of the random baseline (default 5)"
    )
    validate.add_argument(
        "--bootstrap", type=int, default=5000, help="bootstrap resamples (default 5000)"
    )
    validate.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the sample, Shapley, the random baseline, tie breaks and the bootstrap",
    )
    validate.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where orbital weights are kept between runs (default: <out>/orbitals)",
    )
    validate.add_argument("--checkpoint", choices=["best", "last"], default="best")
    add_device_argument(validate)
    validate.set_defaults(handler=_validate_attention)


def _add_method_options(parser: argparse.ArgumentParser) -> None:
    """The sampling options of the attribution methods (explain and validate-attention)."""
    parser.add_argument(
        "--samples", type=int, default=64, help="shapley: random permutations (default 64)"
    )
    parser.add_argument(
        "--steps", type=int, default=32, help="integrated_gradients: steps (default 32)"
    )


def _explain(args: argparse.Namespace) -> None:
    from atomlens.explain.report import write_report
    from atomlens.files import check_output_dir
    from atomlens.inference import load_model
    from atomlens.structures.io import read_structure_files

    model, files = model_and_files(args)
    if bool(files) == bool(args.split):
        raise AtomlensError("give structure files or --split (one of the two)")
    check_output_dir(args.out, "--out")
    predictor = load_model(model, args.checkpoint, args.device)
    references = None  # structure files: labels in their info, if any
    if args.split:
        structures, references = predictor.split_structures(args.split, args.n, args.seed)
    else:
        structures = read_structure_files(files)
    explanations, written = write_report(
        predictor,
        structures,
        args.out,
        local=args.local,
        structure_figures=args.figures,
        page_limit=args.page_limit,
        faithfulness_mode=args.faithfulness,
        progress=sys.stderr.isatty(),
        method=args.method,
        method_options={"samples": args.samples, "steps": args.steps},
        references=references,
    )
    method = explanations[0].method
    how = "" if args.method else " (the default; choose with --method)"
    print(
        f"explained {len(explanations)} structure(s) by {method}{how}; "
        f"open {args.out / 'index.html'}"
    )
    if args.figures < len(explanations):
        print(f"per-structure figures for the first {args.figures} (raise with --figures)")
    if args.page_limit < len(explanations):
        print(
            f"index.html shows the first {args.page_limit} (raise with --page-limit); "
            "the extxyz and CSV files hold all"
        )
    if method == "shapley":
        print(f"shapley scores from {args.samples} sampled permutations per structure")
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
    method = summary.get("method", "attention")
    if method != "attention":
        print(f"  (the 'attention' order is that of the {method} scores, by magnitude)")
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
    from atomlens.explain.validation import benchmark_explanations, pyscf_weights
    from atomlens.files import (
        check_output_dir,
        safe_filename,
        write_csv,
        write_json_atomic,
        write_text_atomic,
    )
    from atomlens.inference import load_model

    for option, value, least in (
        ("--molecules", args.molecules, 1),
        ("--samples", args.samples, 1),
        ("--steps", args.steps, 1),
        ("--random-draws", args.random_draws, 1),
        ("--bootstrap", args.bootstrap, 100),
    ):
        if value < least:
            raise AtomlensError(f"{option} must be at least {least}, got {value}")
    methods = None
    if args.methods is not None:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in methods if m not in ATTRIBUTION_METHODS]
        if unknown or not methods:
            raise AtomlensError(
                f"--methods: unknown method '{unknown[0] if unknown else args.methods}'; "
                f"choose from {', '.join(ATTRIBUTION_METHODS)} (the orbital calculation's "
                "method is --functional)"
            )
    check_output_dir(args.out, "--out")
    orbital_cache = args.cache_dir or args.out / "orbitals"
    check_output_dir(orbital_cache, "--cache-dir")
    predictor = load_model(args.run, args.checkpoint, args.device)
    reference = args.reference or predictor.target
    if reference not in ("homo", "lumo"):
        raise AtomlensError(
            f"the run predicts {predictor.target!r}; choose --reference homo or lumo"
        )
    structures, _ = predictor.split_structures(args.split, args.molecules, args.seed)
    orbital = {"functional": args.functional, "basis": args.basis, "population": args.population}
    report = benchmark_explanations(
        predictor,
        structures,
        pyscf_weights(reference, orbital_cache, **orbital),
        reference=reference,
        methods=methods,
        options={"samples": args.samples, "steps": args.steps, "seed": args.seed},
        random_draws=args.random_draws,
        n_resamples=args.bootstrap,
        seed=args.seed,
        score_cache=args.out / "scores",
        settings=orbital,
        progress=sys.stderr.isatty(),
    )
    label = safe_filename(args.label or args.run.resolve().name)
    stem = args.out / f"benchmark_{label}_{reference}"
    summary = report.summary() | {
        "run": str(args.run),
        "label": label,
        "checkpoint": args.checkpoint,
        "split": args.split,
    }
    written = [
        write_json_atomic(stem.with_suffix(".json"), summary),
        write_csv(stem.with_suffix(".csv"), *report.csv_rows()),
        write_text_atomic(stem.with_suffix(".md"), report.markdown(f"{label}: ")),
    ]
    print(
        f"{len(report.names)} {args.split} molecules, {args.functional}/{args.basis} "
        f"{reference.upper()} {args.population} atom weights; mean [95% bootstrap CI, "
        f"B = {args.bootstrap}]; faithfulness areas in units of the training-set std"
    )
    print(report.text_table())
    if "shapley" in report.methods:
        print(f"shapley scores from {args.samples} sampled permutations per molecule")
    if report.skipped:
        print(f"skipped {len(report.skipped)} molecule(s), see 'skipped' in the JSON")
    print("wrote " + ", ".join(str(p) for p in written))
