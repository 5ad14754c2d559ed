import json
import logging

import numpy as np
import pytest

from atomlens.cli import main
from atomlens.config import validate_config
from atomlens.datasets import Split
from atomlens.errors import DataError
from atomlens.explain.report import write_report
from atomlens.inference import load_model
from atomlens.structures import read_structures
from atomlens.training.benchmark import (
    matbench_results_dict,
    read_test_predictions,
    resolve_task,
    run_benchmark,
)
from atomlens.training.trainer import learning_rate

CRYSTALS = "tests/data/mp_crystals_sample.extxyz"
TINY_SEN = [
    "model.width=8",
    "model.composition_dim=8",
    "model.conv_channels=4",
    "model.head_dim=8",
    "training.epochs=2",
    "training.batch_size=4",
    "training.threads=1",
]
TINY_SCANN = [
    "model.n_layers=1",
    "model.local_dim=8",
    "model.n_heads=2",
    "model.ffn_dim=8",
    "model.global_dim=8",
    "model.readout_dim=8",
    "model.embedding_dim=8",
    "training.epochs=1",
]


def sen_run(root, overrides):
    return run_benchmark(
        "formation_energy_per_atom",
        "sen",
        root / "sen",
        data=CRYSTALS,
        n_folds=3,
        overrides=overrides,
        progress=False,
    )


@pytest.fixture(scope="module")
def sen_benchmark(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    overrides = [*TINY_SEN, f"data.cache_dir={root / 'cache'}"]
    return root, overrides, sen_run(root, overrides)


def test_benchmark_reports_every_fold_on_disjoint_test_sets(sen_benchmark):
    root, _, summary = sen_benchmark
    assert summary["folds_done"] == 3 and len(summary["mae_per_fold"]) == 3
    assert summary["mae_mean"] == pytest.approx(np.mean(summary["mae_per_fold"]))
    assert summary["unit"] == "eV/atom" and summary["symmetry_stream"] is True
    tests, vals = [], []
    for k in range(3):
        split = Split.load(root / "sen" / f"fold_{k}" / "split.json")
        assert not set(split.train) & (set(split.val) | set(split.test))
        assert not set(split.val) & set(split.test)
        tests.append(split.test)
        vals.append(split.val)
        result = json.loads((root / "sen" / f"fold_{k}" / "result.json").read_text())
        evaluation = json.loads((root / "sen" / f"fold_{k}" / "evaluation_test.json").read_text())
        assert result["mae"] == evaluation["mae"] and result["n_test"] == len(split.test)
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(14))
    table = (root / "sen" / "benchmark.md").read_text()
    assert table.count("\n| ") == 5 and "mean" in table


def test_test_predictions_carry_the_records_ids(sen_benchmark):
    root, _, summary = sen_benchmark
    material_ids = [s.info["material_id"] for s in read_structures(CRYSTALS)]
    labels = {
        s.info["material_id"]: s.info["formation_energy_per_atom"]
        for s in read_structures(CRYSTALS)
    }
    seen = []
    for k in range(3):
        split = Split.load(root / "sen" / f"fold_{k}" / "split.json")
        ids, reference, predicted = read_test_predictions(root / "sen" / f"fold_{k}")
        assert ids == [material_ids[i] for i in split.test]  # the data's ids, in row order
        assert reference == pytest.approx([labels[i] for i in ids])
        result = json.loads((root / "sen" / f"fold_{k}" / "result.json").read_text())
        assert np.mean(np.abs(predicted - reference)) == pytest.approx(result["mae"], rel=1e-5)
        seen += ids
    assert sorted(seen) == sorted(material_ids) and summary["skipped_records"] == []
    document = matbench_results_dict(root / "sen", "formation_energy_per_atom", 3, summary)
    task = document["tasks"]["formation_energy_per_atom"]
    assert document["benchmark_name"] == task["benchmark_name"] == "atomlens"  # not MatBench's
    assert sorted(task["results"]) == ["fold_0", "fold_1", "fold_2"]
    assert sum(len(f["data"]) for f in task["results"].values()) == 14


def test_rerun_keeps_finished_folds_and_resumes_an_interrupted_one(sen_benchmark, caplog):
    caplog.set_level(logging.INFO, logger="atomlens")
    root, overrides, summary = sen_benchmark
    kept = root / "sen" / "fold_0" / "result.json"
    before = kept.stat().st_mtime_ns
    (root / "sen" / "fold_2" / "result.json").unlink()  # killed after training, before scoring
    (root / "sen" / "fold_0" / "test_predictions.csv").unlink()  # a fold of an older version
    again = sen_run(root, overrides)
    assert (root / "sen" / "fold_0" / "test_predictions.csv").is_file()
    printed = caplog.text
    assert "fold 0: done before" in printed and "resuming" in printed
    assert kept.stat().st_mtime_ns == before
    assert again["mae_per_fold"] == pytest.approx(summary["mae_per_fold"])


def test_a_different_benchmark_in_the_same_folder_is_refused(sen_benchmark):
    root, overrides, _ = sen_benchmark
    with pytest.raises(DataError, match="different benchmark"):
        sen_run(root, [*overrides, "model.symmetry=false"])


def test_sen_explanations_include_capsules_and_separability(sen_benchmark, tmp_path):
    root, _, _ = sen_benchmark
    predictor = load_model(root / "sen" / "fold_0")
    structures = list(read_structures(CRYSTALS))
    write_report(predictor, structures, tmp_path, structure_figures=1, progress=False)
    capsules = json.loads((tmp_path / "capsules.json").read_text())
    assert len(capsules) == 14
    first = capsules[0]
    assert len(first["presence"]) == 16 and np.shape(first["pose"]) == (16, 6)
    assert np.shape(first["d_matrix"]) == (16, 6)
    assert first["space_group"] == 229 and first["crystal_system"] == "cubic"  # bcc Cs, mp-1
    scores = json.loads((tmp_path / "separability.json").read_text())
    assert scores["n"] == 14 and 0 <= scores["crystal_system_knn_accuracy"] <= 1
    for name in ("capsules.npz", "figures/capsule_presence.png", "figures/crystal_vectors_pca.png"):
        assert (tmp_path / name).is_file(), name


def test_sen_explain_with_faithfulness_and_a_clear_local_error(sen_benchmark, tmp_path, capsys):
    root, _, _ = sen_benchmark
    run = str(root / "sen" / "fold_0")
    out = tmp_path / "explained"
    args = ["explain", run, CRYSTALS, "--figures", "0", "--out", str(out)]
    assert main([*args, "--faithfulness"]) == 0
    summary = json.loads((out / "faithfulness.json").read_text())
    assert summary["n_structures"] == 13 and summary["n_skipped"] == 1  # one 1-atom cell
    assert summary["mode"] == "atom"
    assert np.isfinite(summary["deletion_auc"]["attention"])
    assert main([*args, "--local"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("model 'sen' has none (models that do: scann)") and "\n" not in err


def test_scann_through_the_same_runner(tmp_path):
    summary = run_benchmark(
        "band_gap",
        "scann",
        tmp_path / "scann",
        data=CRYSTALS,
        n_folds=2,
        overrides=[*TINY_SCANN, f"data.cache_dir={tmp_path / 'cache'}"],
        progress=False,
    )
    assert summary["folds_done"] == 2 and summary["unit"] == "eV"
    assert summary["symmetry_stream"] is None
    assert all(f["separability"] is not None for f in summary["folds"])


def test_task_resolution_and_cli_errors(tmp_path, capsys):
    assert resolve_task("band_gap", "x.extxyz") == ("x.extxyz", "band_gap")
    assert resolve_task("matbench_mp_gap", None) == ("matbench:matbench_mp_gap", None)
    with pytest.raises(DataError, match="brings its own data"):
        resolve_task("matbench_mp_gap", "x.extxyz")
    with pytest.raises(DataError, match="--data"):
        resolve_task("band_gap", None)
    out = str(tmp_path / "b")
    assert (
        main(["benchmark", "--task", "nope", "--data", CRYSTALS, "--model", "sen", "--out", out])
        == 1
    )
    assert "unknown target(s) ['nope']" in capsys.readouterr().err
    args = ["benchmark", "--task", "band_gap", "--data", CRYSTALS, "--model", "scann"]
    assert main([*args, "--out", out, "--no-symmetry"]) == 1
    assert "--no-symmetry: model 'scann' has no symmetry stream" in capsys.readouterr().err
    assert main([*args[:-1], "nosuchmodel", "--out", out]) == 1
    assert "unknown model 'nosuchmodel'; choose from scann, sen" in capsys.readouterr().err
    assert main([*args, "--out", out, "--folds", "1"]) == 1
    assert "at least 2 folds" in capsys.readouterr().err


def test_budget_schedule_follows_elapsed_time():
    raw = {"data": {"source": "x", "target": "y"}}
    config = validate_config(
        raw
        | {"training": {"scheduler": "cosine_budget", "max_minutes": 1, "lr": 1e-3, "min_lr": 0}}
    )
    assert learning_rate(config, 0, 0.0) == pytest.approx(1e-3)
    assert learning_rate(config, 5, 30.0) == pytest.approx(5e-4)
    assert learning_rate(config, 9, 90.0) == pytest.approx(0.0)
    with pytest.raises(DataError, match=r"cosine_budget needs training\.max_minutes"):
        validate_config(raw | {"training": {"scheduler": "cosine_budget"}})


def test_model_name_selects_the_config():
    raw = {"data": {"source": "x", "target": "y"}}
    assert type(validate_config(raw | {"model": {"name": "sen"}}).model).__name__ == "SenConfig"
    assert type(validate_config(raw).model).__name__ == "ScannConfig"
    with pytest.raises(DataError, match="unknown model name 'foo'"):
        validate_config(raw | {"model": {"name": "foo"}})
    with pytest.raises(DataError, match=r"model\.n_layers"):
        validate_config(raw | {"model": {"name": "sen", "n_layers": 2}})
