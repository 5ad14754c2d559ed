"""Descriptor models: SISSO speed, and what a random row split hides.

1. SISSO on the synthetic diffusivity table (828 rows, 43 primaries + the ten operators):
   candidates screened per second by SIS, and the exact L0 time for D = 3 on subspaces
   holding 10^5 to 10^6 three-feature subsets; the recovered formulas.
2. Random forest and XGBoost (the paper's settings) scored three ways on the same table:
   5-fold CV grouped by composition, plain 5-fold over rows, and the paper's 85/15 row split.

Writes benchmarks/results/descriptors.json.

    python benchmarks/bench_descriptors.py [--complexity 2]
"""

from __future__ import annotations

import argparse
import time
from math import comb
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def sisso_speed(table, complexity: int) -> dict:
    from atomlens.descriptors import sisso

    names = table.feature_names
    out: dict = {"rows": len(table.y), "primary_features": len(names), "complexity": complexity}
    start = time.perf_counter()
    space = sisso.FeatureSpace(table.x, names, sisso.DEFAULT_OPS, complexity)
    built = time.perf_counter() - start
    start = time.perf_counter()
    n_candidates = space.size()
    counted = time.perf_counter() - start
    start = time.perf_counter()
    top, _ = sisso.screen(space, table.y, 20)
    screened = time.perf_counter() - start
    out |= {
        "candidates": n_candidates,
        "stored_levels_seconds": built,
        "generate_seconds": counted,
        "sis_pass_seconds": screened,
        "candidates_screened_per_second": n_candidates / screened,
        "best_single_feature": sisso.display(top.names[0], names),
    }
    print(
        f"SISSO feature space, complexity {complexity}: {n_candidates:,} candidates; one SIS "
        f"pass {screened:.1f} s = {n_candidates / screened:,.0f} candidates/s"
    )
    l0 = []
    rng = np.random.default_rng(0)
    for size in (85, 120, 182):
        x = rng.normal(size=(len(table.y), size))
        start = time.perf_counter()
        _, _, solved = sisso.best_subsets(x, table.y, 3)
        seconds = time.perf_counter() - start
        l0.append(
            {
                "subspace": size,
                "subsets": solved,
                "seconds": seconds,
                "subsets_per_second": solved / seconds,
            }
        )
        print(f"  L0, D=3, subspace {size}: {solved:,} subsets in {seconds:.2f} s")
    out["l0_d3"] = l0
    start = time.perf_counter()
    result = sisso.sisso(
        table.x,
        table.y,
        names,
        ops=sisso.DEFAULT_OPS,
        complexity=complexity,
        max_dim=3,
        sis_size=20,
    )
    out["full_run_seconds"] = time.perf_counter() - start
    out["models"] = [
        {"formula": sisso.display(m.formula("lnD"), names), "rmse": m.rmse, "r2": m.r2}
        for m in result.models
    ]
    for m in out["models"]:
        print(f"  {m['formula']}  (RMSE {m['rmse']:.3f})")
    start = time.perf_counter()
    plain = sisso.sisso(table.x, table.y, names, ops=(), max_dim=3)
    out["best_subset"] = {
        "seconds": time.perf_counter() - start,
        "subsets": plain.l0_subsets,
        "formula": sisso.display(plain.models[2].formula("lnD"), names),
        "rmse": plain.models[2].rmse,
    }
    print(f"  best subset (--ops ''): {out['best_subset']['formula']}")
    return out


def leakage(table) -> dict:
    from atomlens.descriptors import models
    from atomlens.descriptors.splits import kfold, row_split

    schemes = {
        "grouped_5fold": kfold(len(table.y), 5, 62, table.groups),
        "rows_5fold": kfold(len(table.y), 5, 62),
        "paper_85_15_rows": [row_split(len(table.y), 0.15, 62)],
    }
    out = {}
    for kind in ("rf", "xgboost"):
        for scheme, folds in schemes.items():
            start = time.perf_counter()
            summary = models.cross_validate(
                table, kind, folds, scheme, permutation_repeats=1, progress=False
            ).summary()
            summary["seconds"] = time.perf_counter() - start
            out[f"{kind}/{scheme}"] = summary
            print(
                f"{kind:8s} {scheme:18s} R2 {summary['r2']:.3f} ± {summary['r2_std']:.3f}  "
                f"MAE {summary['mae']:.3f}  RMSE {summary['rmse']:.3f}"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--complexity", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "descriptors.json")
    args = parser.parse_args()
    import tempfile

    from atomlens.descriptors.synthetic import diffusivity_table
    from atomlens.descriptors.table import read_table

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "diffusivity.csv"
        diffusivity_table().to_csv(path, index=False)
        table = read_table(path, "lnD", group_by="composition", exclude=("temperature",))
    report = {
        "table": "atomlens.descriptors.synthetic.diffusivity_table() (207 compositions x 4 T)",
        "sisso": sisso_speed(table, args.complexity),
        "leakage": leakage(table),
        "note": f"three-subset counts: C(85,3)={comb(85, 3):,}, C(182,3)={comb(182, 3):,}",
    }
    from atomlens.files import write_json_atomic

    write_json_atomic(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
