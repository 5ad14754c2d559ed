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
        "index.html (open it in a browser; works offline) and figures/*.png; with "
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
        default="attention",
        help="per-atom scores written beside the attention (column atomlens_<method>) and "
        "used to order the faithfulness curves: attention (default), rollout (through the "
        "local layers), gradient_input, integrated_gradients, occlusion (atom removed), "
        "shapley (sampled)",
    )
    explain.add_argument(
        "--samples", type=int, default=64, help="shapley: random permutations (default 64)"
    )
    explain.add_argument(
        "--steps", type=int, default=32, help="integrated_gradients: steps (default 32)"
    )
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
        default=None,
        help="where orbital weights are kept between runs "
        "(default: orbitals/ in $ATOMLENS_CACHE, else ~/.cache/atomlens)",
    )
    validate.add_argument("--checkpoint", choices=["best", "last"], default="best")
    add_device_argument(validate)
    validate.set_defaults(handler=_validate_attention)


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
    print(f"explained {len(explanations)} structure(s); open {args.out / 'index.html'}")
    if args.figures < len(explanations):
        print(f"per-structure figures for the first {args.figures} (raise with --figures)")
    if args.page_limit < len(explanations):
        print(
            f"index.html shows the first {args.page_limit} (raise with --page-limit); "
            "the extxyz and CSV files hold all"
        )
    if args.method == "shapley":
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
    from atomlens.explain.attention import explain
    from atomlens.explain.validation import validate_attention
    from atomlens.files import check_output_dir, write_json_atomic
    from atomlens.inference import load_model
    from atomlens.paths import resolve_cache_dir

    if args.run.is_dir():  # attention_validation_<orbital>.json goes into the run
        check_output_dir(args.run, "run")
    orbital_cache = args.cache_dir or resolve_cache_dir() / "orbitals"
    check_output_dir(orbital_cache, "--cache-dir")
    predictor = load_model(args.run, args.checkpoint, args.device)
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
        orbital_cache,
        method=args.method,
        basis=args.basis,
        population=args.population,
        seed=args.seed,
        progress=sys.stderr.isatty(),
    )
    summary = report.summary() | {"run": str(args.run), "model_target": predictor.target}
    path = args.run / f"attention_validation_{reference}.json"
    write_json_atomic(path, summary)
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
