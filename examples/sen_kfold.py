"""SEN in a few lines: k-fold benchmark, capsule outputs, and the symmetry of a crystal.

Runs on the 14 crystals bundled with the tests (seconds on a CPU); point ``DATA`` at a
real data set (e.g. the 36k Materials Project extxyz) and drop the tiny settings for a
real benchmark.

    python examples/sen_kfold.py [OUT_DIR]
"""

import sys
from pathlib import Path

import ase.build

from atomlens.inference import load_model
from atomlens.structures import from_ase
from atomlens.structures.symmetry import CRYSTAL_SYSTEMS, analyse_symmetry
from atomlens.training.benchmark import format_table, run_benchmark

DATA = Path(__file__).parents[1] / "tests" / "data" / "mp_crystals_sample.extxyz"
out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/example_sen")

# The symmetry stream reads this from spglib for every crystal.
crystal = ase.build.bulk("NaCl", "rocksalt", a=5.64)
symmetry = analyse_symmetry(from_ase(crystal))
print(
    f"NaCl: space group {symmetry.space_group} ({CRYSTAL_SYSTEMS[symmetry.crystal_system]}), "
    f"site orders {symmetry.site_order.tolist()}, Wyckoff multiplicities "
    f"{symmetry.multiplicity.tolist()}"
)

# 3-fold cross-validation of a tiny SEN (MatBench's fold rule; rerunning resumes).
tiny = ["model.width=8", "model.composition_dim=8", "model.conv_channels=4", "model.head_dim=8"]
summary = run_benchmark(
    "formation_energy_per_atom",
    "sen",
    out / "benchmark",
    data=str(DATA),
    n_folds=3,
    overrides=[*tiny, "training.epochs=3", "training.batch_size=4", f"data.cache_dir={out}/cache"],
    progress=False,
)
print(format_table(summary))

# Capsule outputs of one fold's model for a crystal of its test fold.
model = load_model(out / "benchmark" / "fold_0")
structures, labels = model.split_structures("test", n=1)
(chunk, _, output) = next(model.forward(structures))
print(
    f"{chunk[0].formula}: predicted formation energy {output['prediction'][0]:.3f} eV/atom "
    f"(DFT {labels[0]:.3f})"
)
print(f"capsule presence: {[round(float(p), 2) for p in output['capsule_presence'][0]]}")
print(f"D matrix shape: {tuple(output['capsule_matrix'][0].shape)}")
