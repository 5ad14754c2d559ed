"""Descriptor models in a few seconds: SISSO and a random forest on a synthetic table.

    python examples/descriptor_models.py [OUT_DIR]

The table mimics the paper's data (compositions at several temperatures, ln D). SISSO
finds a three-term formula; the random forest is scored with CV grouped by composition
and with a plain row split, to show what the row split hides.
"""

import sys
import tempfile
from pathlib import Path

from atomlens.descriptors import models, sisso
from atomlens.descriptors.splits import kfold
from atomlens.descriptors.synthetic import diffusivity_table
from atomlens.descriptors.table import read_table

out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
path = out_dir / "diffusivity.csv"
diffusivity_table(n_compositions=60, seed=1).to_csv(path, index=False)
table = read_table(path, "lnD", group_by="composition", exclude=("temperature",))
print(f"table: {len(table.y)} rows, {len(table.feature_names)} features")

result = sisso.sisso(table.x, table.y, table.feature_names, ops=(), max_dim=3)
best = result.models[-1]
print("best 3-feature model:", sisso.display(best.formula("lnD"), table.feature_names))
print(f"  RMSE {best.rmse:.3f}, R2 {best.r2:.3f}")

for name, folds in (
    ("grouped", kfold(len(table.y), 5, 0, table.groups)),
    ("rows", kfold(len(table.y), 5, 0)),
):
    report = models.cross_validate(
        table, "rf", folds, name, permutation_repeats=1, progress=False
    ).summary()
    print(f"random forest, {name} 5-fold CV: R2 {report['r2']:.3f}, MAE {report['mae']:.3f}")
