import pytest

from atomlens.amorphous_db.build import build
from atomlens.amorphous_db.plan import read_plan
from atomlens.amorphous_db.store import Store
from atomlens.cli import main

pytest.importorskip("matminer")

# EMT has no Li: a Lennard-Jones liquid stands in for the potential (any ASE calculator).
PLAN = """\
compositions: [Li2SiO3]
atoms: 12
temperatures: [900, 1500]
melt: {temperature: 3000, steps: 20}
anneal: {steps: 100}
md: {timestep_fs: 2.0, segment_steps: 20, interval: 4}
potential:
  name: ase.calculators.lj:LennardJones
  options: {sigma: 1.8, epsilon: 0.02, rc: 4.5, smooth: true}
"""


def test_featurize_from_the_database_equals_featurize_from_the_files(tmp_path, capsys):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    db = tmp_path / "li.db"
    report = build(read_plan(plan), str(db))
    assert len(report.done) == 2
    store = Store(db)
    work = store.work_dir()
    files = [str(work / r.structure_file) for r in store.db.select(kind="job", status="done")]
    from_db, from_files = tmp_path / "db.csv", tmp_path / "files.csv"
    assert main(["featurize", "--db", str(db), "--out", str(from_db), "--workers", "1"]) == 0
    assert main(["featurize", *files, "--out", str(from_files), "--workers", "1"]) == 0
    assert from_db.read_text() == from_files.read_text()
    header, *rows = from_db.read_text().splitlines()
    columns = header.split(",")
    assert columns[:5] == ["id", "composition", "temperature", "lnD", "inv_kBT"]
    assert {"li_fraction", "li_neighbor_count", "straight_path_width"} <= set(columns)
    # id, composition, the target lnD and 43 features: temperature, 1/(kB T), 21 composition
    # and 20 Li-transport descriptors; no bookkeeping columns that would pass for features.
    assert len(columns) == 2 + 1 + 43 and len(rows) == 2
    assert not [c for c in columns if c.endswith("_coverage")]
    assert rows[0].startswith("id=Li2SiO3_900K_seed0,Li2SiO3,900.0,")
    capsys.readouterr()
    assert main(["featurize", "--db", str(db), str(files[0]), "--out", str(from_db)]) == 1
    assert "one of the two" in capsys.readouterr().err
