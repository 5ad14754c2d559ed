"""Plan -> amorphous database -> features -> random forest, XGBoost and SISSO, end to end.

    python examples/amorphous_database.py [OUT_DIR [FIGURE]]

Five Li2O-SiO2 glasses, each melted and annealed at two temperatures in 12-atom cells with a
Lennard-Jones stand-in potential (seconds per job; use ``potential: {name: chgnet}`` and
~100 atoms for real numbers). The database is then featurized (the 43 features: 21
composition and 20 Li-transport descriptors, temperature and 1/kBT) and learned from, with
CV grouped by composition. Runs in about a minute on two cores. The Arrhenius plot of
``amorphous-db show`` is ``OUT_DIR/arrhenius_all.png``, copied to FIGURE when given (the
README's figure: ``python examples/amorphous_database.py out
docs/images/amorphous_arrhenius.png``).
"""

import shutil
import sys
import tempfile
from pathlib import Path

from atomlens.cli import main

PLAN = """\
composition_lines:
  - between: [Li2O, SiO2]
    fractions: [0.25, 0.3333, 0.4, 0.5, 0.6667]
atoms: 12
temperatures: [900, 1500]
seeds: [0]
melt: {temperature: 3000, steps: 40}
anneal: {steps: 200}
md: {timestep_fs: 2.0, segment_steps: 40, interval: 4}
potential:
  name: ase.calculators.lj:LennardJones
  options: {sigma: 1.8, epsilon: 0.02, rc: 4.5, smooth: true}
diffusion: {species: Li}
"""


def run(*args: str) -> None:
    """One atomlens command; stop on an error."""
    print(f"\n$ atomlens {' '.join(args)}")
    if main(list(args)) != 0:
        raise SystemExit(f"atomlens {args[0]} failed")


def example() -> None:
    """Build, show, featurize and learn, all in ``OUT_DIR``."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.yaml").write_text(PLAN)
    db = str(out / "amorphous.db")

    run(
        "amorphous-db", "build", str(out / "plan.yaml"), "--db", db, "--jobs", "2", "--threads", "1"
    )
    run("amorphous-db", "show", "--db", db, "--plot", str(out / "arrhenius_all.png"))
    if len(sys.argv) > 2:
        figure = Path(sys.argv[2])
        figure.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "arrhenius_all.png", figure)
        print(f"copied the Arrhenius plot to {figure}")
    run("featurize", "--db", db, "--out", str(out / "features.csv"), "--workers", "2")
    for model in ("rf", "xgboost"):
        run(
            "fit-table",
            str(out / "features.csv"),
            "--target",
            "lnD",
            "--model",
            model,
            "--permutation-repeats",
            "1",
            "--out",
            str(out / model),
        )
    run(
        "sisso",
        str(out / "features.csv"),
        "--target",
        "lnD",
        "--dim",
        "2",
        "--ops",
        "",
        "--group-by",
        "composition",
        "--cv",
        "5",
        "--out",
        str(out / "sisso.json"),
    )


if __name__ == "__main__":  # the local process pool starts workers that import this file
    example()
