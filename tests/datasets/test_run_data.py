"""A run's data: split files, parts from separate files, graphs built only for used records."""

import json

import ase.io
import numpy as np
import pytest
from ase.build import molecule

import atomlens.datasets.cache as cache_module
from atomlens.cli import main
from atomlens.config import validate_config
from atomlens.datasets import GraphDataset, build_graph_cache, load_source, read_manifest
from atomlens.datasets.run_data import prepare_run_data
from atomlens.datasets.splits import Split
from atomlens.errors import DataError
from tests.training.conftest import TINY_MODEL

GRAPH = ("voronoi", {})


def run_config(tmp_path, split, *, source=None, run="run", **data):
    """A one-epoch tiny-model config for the 12-molecule sample (or another source)."""
    return validate_config(
        {
            "run_dir": str(tmp_path / run),
            "data": {
                **({} if source is None else {"source": str(source)}),
                "target": "homo",
                "cache_dir": str(tmp_path / "cache"),
                "split": split,
                **data,
            },
            "model": TINY_MODEL,
            "training": {"epochs": 1, "batch_size": 4, "seed": 0, "threads": 1},
        }
    )


def write_molecules(path, names=("CH4", "NH3", "H2O", "C2H6", "CH3OH", "HCN")):
    """A small labelled extxyz file (homo in info, made up from the atom count)."""
    frames = []
    for k, name in enumerate(names):
        atoms = molecule(name)
        atoms.info = {"homo": -10.0 + 0.1 * len(atoms) + 0.01 * k, "name": f"ext-{name}"}
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")
    return path


def count_built(monkeypatch):
    """Records handed to graph building, chunk by chunk (a counter, not a clock)."""
    built: list[int] = []
    real = cache_module._build_chunk

    def counting(task):
        built.extend(task[2])
        return real(task)

    monkeypatch.setattr(cache_module, "_build_chunk", counting)
    return built


# -- item 5: graphs for the records a run uses ---------------------------------------------


def test_a_subset_builds_only_its_records_and_a_larger_one_only_the_rest(
    tmp_path, molecule_file, monkeypatch
):
    built = count_built(monkeypatch)
    small = prepare_run_data(
        run_config(
            tmp_path, {"train": 4, "val": 2, "test": 1, "seed": 3}, source=molecule_file
        ).data,
        GRAPH,
    )
    used = np.concatenate([small.split.part(p) for p in ("train", "val", "test")])
    assert sorted(built) == sorted(used.tolist()) and len(built) == 7
    manifest = read_manifest(small.entries["train"])
    assert manifest["n_graphs"] == 7 and [s["n_graphs"] for s in manifest["shards"]] == [7]
    assert np.array_equal(np.sort(small.dataset.records), np.sort(used))

    built.clear()
    large = prepare_run_data(
        run_config(tmp_path, {"val": 2, "test": 2, "seed": 5}, source=molecule_file).data, GRAPH
    )
    assert large.entries["train"] == small.entries["train"]  # one content-addressed entry
    assert sorted(built) == sorted(set(range(12)) - set(used.tolist()))  # only the rest
    manifest = read_manifest(large.entries["train"])
    assert [s["n_graphs"] for s in manifest["shards"]] == [7, 5] and manifest["n_graphs"] == 12

    built.clear()
    again = prepare_run_data(
        run_config(tmp_path, {"val": 2, "test": 2, "seed": 5}, source=molecule_file).data, GRAPH
    )
    assert built == [] and again.split.same_records(large.split)


def test_graphs_read_across_shards_equal_one_full_build(tmp_path, molecule_file, capsys):
    source = load_source(str(molecule_file), targets=["homo"])
    shared = tmp_path / "shared"
    build_graph_cache(source, records=[7, 2, 9], cache_dir=shared, workers=1, progress=False)
    entry = build_graph_cache(source, cache_dir=shared, workers=1, progress=False)
    assert len(read_manifest(entry)["shards"]) == 2
    assert main(["graphs", "info", str(entry)]) == 0
    out = capsys.readouterr().out
    assert "(12 records, 0 skipped)" in out and "(2 shards)" in out and "graphs      12," in out
    full = GraphDataset(build_graph_cache(source, cache_dir=tmp_path / "full", progress=False))
    records = np.array([9, 0, 2, 11, 7, 3])  # scattered over both shards, in any order
    view = GraphDataset(entry, records=records)
    assert view.records.tolist() == records.tolist()
    expected, got = full.take(records), view.take(np.arange(len(records)))
    assert expected.keys() == got.keys()
    for name in expected:
        assert np.array_equal(expected[name], got[name]), name
    assert np.array_equal(GraphDataset(entry).arrays["distance"], full.arrays["distance"])
    with pytest.raises(DataError, match=r"record 12 is out of range: 'qm9_sample' has 12"):
        build_graph_cache(source, records=[12], cache_dir=shared, progress=False)


def test_a_killed_subset_build_resumes_its_chunks(tmp_path, molecule_file, monkeypatch):
    source = load_source(str(molecule_file), targets=["homo"])
    records = [1, 4, 5, 8, 10]
    real = cache_module._build_chunk

    def dying(task):
        if task[0] == 1:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(cache_module, "_build_chunk", dying)
    with pytest.raises(KeyboardInterrupt):
        build_graph_cache(
            source, records=records, cache_dir=tmp_path, workers=1, chunk_size=2, progress=False
        )
    monkeypatch.setattr(cache_module, "_build_chunk", real)
    built = count_built(monkeypatch)
    entry = build_graph_cache(
        source, records=records, cache_dir=tmp_path, workers=1, chunk_size=2, progress=False
    )
    assert built == [5, 8, 10]  # the finished first chunk (1, 4) was kept
    assert GraphDataset(entry).records.tolist() == records


# -- item 1: explicit splits -------------------------------------------------------------------


def test_a_runs_split_json_given_as_split_file_reproduces_the_run(tmp_path, molecule_file):
    from atomlens.training.trainer import train

    first = train(
        run_config(tmp_path, {"val": 3, "test": 2, "seed": 7}, source=molecule_file),
        progress=False,
    )
    saved = json.loads((first / "split.json").read_text())
    assert saved["seed"] == 7 and saved["sources"]["test"] == str(molecule_file)
    second = train(
        run_config(
            tmp_path, {"file": str(first / "split.json")}, source=molecule_file, run="again"
        ),
        progress=False,
    )
    assert Split.load(second / "split.json").same_records(Split.load(first / "split.json"))
    assert f"file: {first / 'split.json'}" in (second / "config.yaml").read_text()


def test_a_conflicting_split_json_in_the_run_dir_is_an_error(tmp_path, molecule_file):
    from atomlens.training.trainer import train

    config = run_config(tmp_path, {"val": 2, "test": 2, "seed": 1}, source=molecule_file)
    run = tmp_path / "run"
    run.mkdir()
    Split(np.arange(8), np.array([8, 9]), np.array([10, 11]), seed=0, n_total=12).save(
        run / "split.json"
    )
    with pytest.raises(DataError, match=r"split.json' holds another split than data.split") as e:
        train(config, progress=False)
    assert "\n" not in str(e.value) and "data.split.file" in str(e.value)
    (run / "split.json").unlink()
    train(config, progress=False)  # the same split again (a resume, a rerun): fine
    config.training.epochs = 2
    train(config, progress=False)  # resumed with its own split.json
    assert (run / "split.json").is_file()


def test_train_and_test_from_separate_files_and_evaluate_scores_the_test_file(
    tmp_path, molecule_file, capsys
):
    from atomlens.inference import load_model
    from atomlens.training.trainer import train

    external = write_molecules(tmp_path / "external.extxyz")
    config = run_config(
        tmp_path,
        {"train_source": str(molecule_file), "test_source": str(external), "val": 2, "seed": 0},
    )
    assert config.data.source is None  # train_source is the pool: no data.source needed
    run = train(config, progress=False)
    split = json.loads((run / "split.json").read_text())
    assert split["test"] == list(range(6)) and split["sources"]["test"] == str(external)
    assert len(split["train"]) == 10 and len(split["val"]) == 2

    assert main(["evaluate", str(run)]) == 0
    metrics = json.loads((run / "evaluation_test.json").read_text())
    assert metrics["n"] == 6
    predictor = load_model(run)
    structures, labels = predictor.split_structures("test")
    assert [s.info["name"] for s in structures] == [
        a.info["name"] for a in ase.io.read(external, ":")
    ]
    predicted = np.array([p.value for p in predictor.predict(structures)])
    assert metrics["mae"] == pytest.approx(float(np.abs(predicted - labels).mean()), rel=1e-4)


def test_an_empty_test_split_points_at_evaluate_data(tmp_path, molecule_file, capsys):
    from atomlens.training.trainer import train

    run = train(
        run_config(tmp_path, {"val": 2, "test": 0, "seed": 0}, source=molecule_file),
        progress=False,
    )
    assert main(["evaluate", str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"atomlens: error: the test split of '{run}' is empty (see its split.json); score a "
        f"labelled file instead: atomlens evaluate {run} --data FILE"
    )


@pytest.mark.parametrize(
    ("split", "data", "message"),
    [
        ({"file": "s.json", "val": 0.2}, {}, r"split.file lists the records: remove split.val"),
        ({"test_source": "t.xyz", "test": 0.1}, {}, r"split.test and split.test_source exclude"),
        ({}, {"source": None}, r"data.source is required \(or give data.split.train_source\)"),
        ({"train_source": "b.xyz"}, {"source": "a.xyz"}, r"data.source 'a.xyz' and data.split"),
    ],
)
def test_split_config_rules(tmp_path, split, data, message):
    raw = {"source": "a.xyz", "target": "homo", "split": split} | data
    if raw["source"] is None:
        raw.pop("source")
    with pytest.raises(DataError, match=message):
        validate_config({"data": raw})


def test_split_config_defaults_leave_parts_with_their_own_file_alone():
    split = validate_config({"data": {"source": "a.xyz", "target": "y"}}).data.split
    assert (split.train, split.val, split.test) == (None, 0.1, 0.1)
    split = validate_config(
        {"data": {"source": "a.xyz", "target": "y", "split": {"test_source": "t.xyz"}}}
    ).data.split
    assert (split.val, split.test) == (0.1, None)
