import json

import numpy as np
import pytest

from atomlens.datasets import Split, load_source, random_split, target_statistics
from atomlens.datasets.splits import PARTS, read_split_file
from atomlens.errors import DataError


def test_split_is_a_partition_and_reproducible(tmp_path):
    split = random_split(1000, val=0.1, test=100, seed=7)
    parts = np.concatenate([split.train, split.val, split.test])
    assert np.array_equal(np.sort(parts), np.arange(1000))
    assert (len(split.train), len(split.val), len(split.test)) == (800, 100, 100)
    assert np.array_equal(random_split(1000, seed=7).test, split.test)
    assert not np.array_equal(random_split(1000, seed=8).test, split.test)
    split.save(tmp_path / "split.json")
    loaded = Split.load(tmp_path / "split.json")
    assert loaded.seed == 7 and np.array_equal(loaded.val, split.val)


def test_explicit_train_size_leaves_extra_unused():
    split = random_split(100, train=50, val=10, test=10, seed=0)
    assert len(split.train) == 50
    with pytest.raises(DataError, match="cannot split"):
        random_split(10, train=9, val=1, test=1)


def test_statistics_come_from_the_training_split_only():
    targets = np.arange(20, dtype=float).reshape(10, 2)
    split = random_split(10, val=2, test=2, seed=1)
    mean, std = target_statistics(targets, split.train)
    leaked = targets.copy()
    leaked[split.test] = 1e6
    mean2, std2 = target_statistics(leaked, split.train)
    np.testing.assert_allclose(mean, mean2)
    np.testing.assert_allclose(std, std2)
    np.testing.assert_allclose(mean, targets[split.train].mean(axis=0))
    with pytest.raises(DataError, match="empty"):
        target_statistics(targets, np.array([], dtype=int))


def test_bad_split_file(tmp_path):
    (tmp_path / "s.json").write_text("{}")
    with pytest.raises(DataError, match="cannot read split file"):
        Split.load(tmp_path / "s.json")


# -- split files --------------------------------------------------------------------------


def _parts(molecule_file):
    """The 12-molecule sample as the source of every part, as the config would name it."""
    source = load_source(str(molecule_file), targets=["homo"])
    return dict.fromkeys(PARTS, source), dict.fromkeys(PARTS, str(molecule_file))


def test_split_file_round_trip(tmp_path, molecule_file):
    sources, specs = _parts(molecule_file)
    made = random_split(12, val=2, test=3, seed=4)
    split = Split(made.train, made.val, made.test, seed=4, n_total=12, sources=specs)
    split.save(tmp_path / "split.json")
    assert Split.load(tmp_path / "split.json").sources == specs
    lists = read_split_file(tmp_path / "split.json", sources, specs)
    for part in PARTS:
        assert np.array_equal(lists[part], split.part(part)), part
    assert Split(**lists, seed=None, n_total=12).same_records(split)


def test_split_file_takes_record_ids_and_indices(tmp_path, molecule_file):
    sources, specs = _parts(molecule_file)
    path = tmp_path / "split.json"
    # a record id of the source, an index, and an info id value (qm9_id 4 is record 2)
    path.write_text(json.dumps({"train": ["qm9_sample.extxyz:0", 1, "4"], "val": [11]}))
    lists = read_split_file(path, sources, specs)
    assert lists["train"].tolist() == [0, 1, 2] and lists["val"].tolist() == [11]
    assert lists["test"].size == 0  # a part the file leaves out is empty


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"train": [0, 1], "val": [5], "test": [1]},
            r"test entry 1 \(record 1, id 'qm9_sample.extxyz:1'\) is listed in both train and test",
        ),
        ({"train": [0, 0], "val": [5]}, r"train entry 0 \(record 0, .*\) is listed twice"),
        (
            {"train": [0, 12], "val": [5]},
            r"train entry 12 is out of range: '.*qm9_sample.extxyz' has 12 records "
            r"\(indices 0 to 11\)",
        ),
        ({"train": [-1], "val": [5]}, r"train entry -1 is out of range"),
        (
            {"train": [0], "val": ["mp-149"]},
            r"val entry 'mp-149' is not the id of a record of '.*qm9_sample.extxyz'",
        ),
        ({"train": [0.5], "val": [5]}, r"train entry 0.5 is neither a record id"),
        ({"train": [0], "valid": [5]}, r"unknown key 'valid' \(expected train, val and test\)"),
        ({"train": 3}, r"'train' must be a list"),
        (
            {"train": [0], "val": [1], "sources": {"test": "other.extxyz"}},
            r"its test records are records of 'other.extxyz', but the config takes test from",
        ),
    ],
)
def test_split_file_errors_name_the_file_and_the_entry(tmp_path, molecule_file, payload, message):
    sources, specs = _parts(molecule_file)
    path = tmp_path / "bad_split.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(DataError, match=rf"^split file '{path}': {message}") as error:
        read_split_file(path, sources, specs)
    assert "\n" not in str(error.value)


def test_split_file_that_is_not_json(tmp_path, molecule_file):
    sources, specs = _parts(molecule_file)
    path = tmp_path / "split.json"
    path.write_text("train: [1, 2]")
    with pytest.raises(DataError, match=rf"split file '{path}' is not valid JSON"):
        read_split_file(path, sources, specs)
    with pytest.raises(DataError, match="cannot read split file"):
        read_split_file(tmp_path / "missing.json", sources, specs)
