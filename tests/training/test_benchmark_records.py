"""Benchmark per-record outputs (issue 18 part 6): test predictions per fold with the
records' own ids, MatBench's result file, folds over all records of the task."""

import csv
import gzip
import hashlib
import json
import sys
import types
from pathlib import Path

import ase.io
import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold

from atomlens.cli import main
from atomlens.datasets import load_source
from atomlens.datasets.folds import MATBENCH_SEED, folds_over_records
from atomlens.datasets.matbench import matbench_ids
from atomlens.training.benchmark import task_records
from tests.training.test_benchmark import TINY_SCANN as TINY_SCANN_MODEL

DATA = Path(__file__).parents[1] / "data"
CRYSTALS = DATA / "mp_crystals_sample.extxyz"
TINY_SCANN = [*TINY_SCANN_MODEL, "training.batch_size=4", "training.threads=1"]
NAN_RECORD = 5  # the fake task's record without a label (skipped at graph building)


def fake_matbench_table() -> pd.DataFrame:
    """What matminer's load_dataset gives for a structure task: structure + target columns."""
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = ase.io.read(CRYSTALS, index=":")
    target = np.array([a.info["formation_energy_per_atom"] for a in frames])
    target[NAN_RECORD] = np.nan
    structures = [AseAtomsAdaptor.get_structure(a) for a in frames]
    return pd.DataFrame({"structure": structures, "e_form": target})


@pytest.fixture
def fake_matminer(monkeypatch):
    """matminer.datasets replaced by a local table (MatBench needs network otherwise)."""
    table = fake_matbench_table()
    requested = []

    def load_dataset(name):
        requested.append(name)
        return table.copy()

    package = types.ModuleType("matminer")
    datasets = types.ModuleType("matminer.datasets")
    datasets.load_dataset = load_dataset
    package.datasets = datasets
    monkeypatch.setitem(sys.modules, "matminer", package)
    monkeypatch.setitem(sys.modules, "matminer.datasets", datasets)
    return table, requested


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_matbench_ids_follow_matbench():
    ids = matbench_ids("matbench_mp_gap", pd.RangeIndex(106113))
    assert ids[0] == "mb-mp-gap-000001" and ids[-1] == "mb-mp-gap-106113"
    assert matbench_ids("matbench_jdft2d", range(636))[:2] == ["mb-jdft2d-001", "mb-jdft2d-002"]
    assert matbench_ids("matbench_x", ["mb-x-7", "mb-x-9"]) == ["mb-x-7", "mb-x-9"]  # kept


def test_matbench_source_uses_matbench_ids(fake_matminer):
    _, requested = fake_matminer
    source = load_source("matbench:matbench_fake")
    assert requested == ["matbench_fake"]
    assert source.ids[:2] == ["mb-fake-01", "mb-fake-02"] and source.ids[-1] == "mb-fake-14"
    assert source.target_names == ("e_form",)
    limited = load_source("matbench:matbench_fake", limit=3)
    assert limited.ids == ["mb-fake-01", "mb-fake-02", "mb-fake-03"]  # numbered over the task


def test_folds_over_records_keep_every_other_record_in_its_fold():
    n, skipped = 23, {2, 7, 19}
    kept = np.array([i for i in range(n) if i not in skipped])
    folds = folds_over_records(kept, n, 5)
    reference = KFold(5, shuffle=True, random_state=MATBENCH_SEED).split(np.arange(n))
    for (train, test), (_, ref_test) in zip(folds, reference, strict=True):
        assert set(kept[test]) == set(ref_test) - skipped
        assert set(kept[train]) == set(range(n)) - set(ref_test) - skipped
    with pytest.raises(Exception, match="same record"):
        folds_over_records(np.array([0, 0, 1]), 5, 2)
    with pytest.raises(Exception, match="no test records left"):
        folds_over_records(np.array([0]), 4, 2)


def test_task_records_count_frames_skipped_when_reading(tmp_path):
    frames = ase.io.read(CRYSTALS, index=":")
    bad = frames[2].copy()
    bad.positions[1] = bad.positions[0] + 0.1  # overlapping atoms: invalid
    bad.info["material_id"] = "mp-bad"
    path = tmp_path / "with_bad.extxyz"
    ase.io.write(path, [*frames[:3], bad, *frames[3:]])
    source = load_source(str(path), skip_invalid=True)
    positions, invalid_positions, ids = task_records(source)
    assert len(source) == 14 and invalid_positions.tolist() == [3] and len(ids) == 15
    assert positions.tolist() == [0, 1, 2, *range(4, 15)]
    assert ids[3] == "with_bad.extxyz:3" and ids[4] == frames[3].info["material_id"]


def test_fake_matbench_benchmark_writes_predictions_and_results(fake_matminer, tmp_path, capsys):
    table, _ = fake_matminer
    out = tmp_path / "bench"
    args = ["benchmark", "--task", "matbench_fake", "--model", "scann", "--out", str(out)]
    args += ["--folds", "3", "--matbench-results"]
    for item in [*TINY_SCANN, "data.skip_invalid=true", f"data.cache_dir={tmp_path / 'c'}"]:
        args += ["--set", item]
    assert main(args) == 0
    assert "results.json.gz" in capsys.readouterr().out

    all_ids = [f"mb-fake-{i + 1:02d}" for i in range(14)]
    skipped_id = all_ids[NAN_RECORD]
    reference = list(KFold(3, shuffle=True, random_state=MATBENCH_SEED).split(np.arange(14)))
    summary = json.loads((out / "benchmark.json").read_text())
    document = json.loads(gzip.decompress((out / "results.json.gz").read_bytes()))
    results = document["tasks"]["matbench_fake"]["results"]
    for k, (_, test) in enumerate(reference):
        rows = read_csv(out / f"fold_{k}" / "test_predictions.csv")
        ids = [r["id"] for r in rows]
        assert set(ids) == {all_ids[i] for i in test} - {skipped_id}  # MatBench's fold
        for row in rows:
            index = all_ids.index(row["id"])
            assert float(row["reference"]) == pytest.approx(table["e_form"][index])
        fold = results[f"fold_{k}"]
        assert set(fold) == {"data", "parameters", "scores"}
        assert fold["data"] == pytest.approx({r["id"]: float(r["prediction"]) for r in rows})
        assert set(fold["scores"]) == {"mae", "rmse", "mape", "max_error"}
        result = json.loads((out / f"fold_{k}" / "result.json").read_text())
        assert fold["scores"]["mae"] == pytest.approx(result["mae"], rel=1e-5)
        assert fold["parameters"]["skipped_ids"] == ([skipped_id] if NAN_RECORD in test else [])

    fold_of_nan = next(k for k, (_, t) in enumerate(reference) if NAN_RECORD in t)
    assert summary["n_records"] == 14 and summary["n_structures"] == 13
    assert summary["skipped_records"] == [
        {"id": skipped_id, "reason": "non-finite label", "fold": fold_of_nan}
    ]
    assert summary["matbench_results"] == "results.json.gz"
    assert document["@class"] == "MatbenchBenchmark" and document["@module"] == "matbench.bench"
    assert document["benchmark_name"] == "matbench_v0.1"
    assert set(document) == {
        "@module",
        "@class",
        "version",
        "benchmark_name",
        "tasks",
        "user_metadata",
        "datestamp",
        "hash",
    }
    task = document["tasks"]["matbench_fake"]
    assert task["dataset_name"] == "matbench_fake" and task["benchmark_name"] == "matbench_v0.1"
    assert task["@class"] == "MatbenchTask"
    rest = {key: value for key, value in document.items() if key != "hash"}
    expected = hashlib.sha256(json.dumps(rest, sort_keys=True).encode("utf-8")).hexdigest()
    assert document["hash"] == expected

    # an interrupted fold whose saved split has other test rows (e.g. split by the old rule)
    saved = json.loads((out / "fold_0" / "split.json").read_text())
    saved["test"] = saved["test"][1:]
    (out / "fold_0" / "split.json").write_text(json.dumps(saved))
    (out / "fold_0" / "result.json").unlink()
    assert main(args) == 1
    assert "holds a fold with other test records" in capsys.readouterr().err
