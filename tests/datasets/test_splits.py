import numpy as np
import pytest

from atomlens.datasets import Split, random_split, target_statistics
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
