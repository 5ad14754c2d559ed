"""Commands for descriptor models: featurize, fit-table, predict-table, sisso."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from atomlens.cli.checks import at_least, fraction
from atomlens.errors import AtomlensError, DataError


def register(commands: Any) -> None:
    """Add this module's commands to the ``atomlens`` parser."""
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
    sisso.add_argument(
        "--sis-size",
        type=int,
        default=None,
        help="candidates added per dimension (default: the most whose exact L0 stays within "
        "20M subsets, 640 at D=2 and 164 at D=3, checked against half as many)",
    )
    sisso.add_argument("--cv", type=int, default=5, help="folds (0: no cross-validation)")
    sisso.add_argument("--group-by", help="column grouping rows in CV (e.g. composition)")
    sisso.add_argument("--exclude", nargs="*", default=[], help="columns that are not features")
    sisso.add_argument("--seed", type=int, default=0)
    sisso.add_argument("--out", type=Path, help="JSON report (default: <table>.sisso.json)")
    sisso.set_defaults(handler=_sisso)

    featurize = commands.add_parser(
        "featurize",
        help="descriptor table (CSV) of structures: composition and Li-transport features",
        description="Compute descriptors for every structure of the given files: 'composition' "
        "(electronegativity, radii, mass, elemental moduli, ...), 'li-transport' (Voronoi Li "
        "neighbour counts, bond ionicities, shortest distances, packing, straight-line path) "
        "or 'all'. Numeric labels of each structure are kept as columns; structures that "
        "fail are listed by id in <out>.failures.csv and skipped.",
    )
    featurize.add_argument("files", type=Path, nargs="*", help="structure files")
    featurize.add_argument(
        "--db",
        help="an amorphous database (amorphous-db build): its finished jobs' final "
        "structures with temperature and lnD, instead of files",
    )
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


def _sisso(args: argparse.Namespace) -> None:
    import time
    import warnings

    import numpy as np

    from atomlens.descriptors import sisso
    from atomlens.descriptors.splits import kfold
    from atomlens.descriptors.table import read_table
    from atomlens.files import check_output_file, write_json_atomic

    at_least(args.dim, 1, "--dim")
    at_least(args.complexity, 0, "--complexity")
    if args.sis_size is not None:
        at_least(args.sis_size, 1, "--sis-size")
    if args.cv == 1 or args.cv < 0:
        raise DataError(f"--cv must be 0 (none) or >= 2 folds, got {args.cv}")
    out = args.out or args.table.with_suffix(".sisso.json")
    check_output_file(out, "--out")
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
    with warnings.catch_warnings():  # printed once below, not once per fold
        warnings.simplefilter("ignore", sisso.ScreeningWarning)
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
        f"{result.l0_seconds:.2f} s over {result.l0_subsets:,} subsets; "
        f"{result.sis_size} screened candidates per dimension"
    )
    if result.warning:
        print(f"warning: {result.warning}", file=sys.stderr)
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
        "sis_size_used": result.sis_size,
        "sis_sizes_tried": result.sis_sizes_tried,
        "screening_converged": result.converged,
        "screening_warning": result.warning,
        "seconds": seconds,
        "models": models,
    }
    write_json_atomic(out, report)
    print(f"wrote {out}")


def _featurize(args: argparse.Namespace) -> None:
    from atomlens.descriptors.table_builder import feature_rows
    from atomlens.files import check_output_file, write_csv
    from atomlens.structures.io import read_structure_files

    at_least(args.workers, 1, "--workers")
    check_output_file(args.out, "--out")
    if bool(args.files) == bool(args.db):
        raise DataError("featurize needs structure files or --db DATABASE (one of the two)")
    if args.db:
        from atomlens.amorphous_db.features import database_structures

        structures = database_structures(args.db)
    else:
        structures = read_structure_files(args.files)
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
    from atomlens.files import check_output_dir, write_csv, write_json_atomic

    if args.cv == "holdout":
        fraction(args.test_fraction, "--test-fraction")
    else:
        at_least(args.folds, 2, "--folds")
    at_least(args.permutation_repeats, 1, "--permutation-repeats")
    check_output_dir(args.out, "--out")
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
    write_json_atomic(out / "scores.json", summary)
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

    from atomlens.descriptors.table import read_csv_frame
    from atomlens.files import check_output_file, write_csv

    check_output_file(args.out, "--out")
    ensemble, meta = _load_table_model(args.model)
    if not args.table.is_file():
        raise DataError(f"'{args.table}': no such file")
    try:
        frame = read_csv_frame(args.table)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"'{args.table}' is not a readable CSV table: {reason}") from None
    if frame.empty:
        raise DataError(f"'{args.table}' has no rows")
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


def _load_table_model(folder: Path) -> tuple[Any, dict[str, Any]]:
    """The model saved by fit-table in ``folder`` (its output folder or the model/ inside).

    Raises:
        DataError: Naming the folder when the model is missing, corrupt or incomplete.
    """
    from atomlens.descriptors.models import load_model

    if not (folder / "model.json").is_file() and (folder / "model" / "model.json").is_file():
        folder = folder / "model"
    try:
        ensemble, meta = load_model(folder)
        if not isinstance(meta.get("features"), list) or not isinstance(meta.get("target"), str):
            raise ValueError("model.json lacks its feature list or target")
    except AtomlensError:
        raise
    except Exception as exc:  # json, skops, zip and xgboost raise many types
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"'{folder}' holds a corrupt or incomplete table model ({type(exc).__name__}: "
            f"{reason}); run fit-table again"
        ) from None
    return ensemble, meta
