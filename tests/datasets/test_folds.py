import numpy as np
import pytest
from sklearn.model_selection import KFold

from atomlens.datasets.folds import MATBENCH_SEED, inner_validation, kfold_indices
from atomlens.errors import DataError


@pytest.mark.parametrize(("n", "k"), [(10, 5), (103, 5), (36737, 5), (7, 3)])
def test_folds_equal_scikit_learn_kfold_with_matbench_seed(n, k):
    reference = KFold(n_splits=k, shuffle=True, random_state=MATBENCH_SEED).split(np.arange(n))
    for (train, test), (ref_train, ref_test) in zip(kfold_indices(n, k), reference, strict=True):
        assert np.array_equal(test, np.sort(ref_test))
        assert np.array_equal(train, np.sort(ref_train))


def test_test_folds_partition_the_records():
    folds = kfold_indices(103, 5)
    tests = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(tests), np.arange(103))
    assert [len(test) for _, test in folds] == [21, 21, 21, 20, 20]


def test_inner_validation_is_disjoint_and_seeded():
    train = np.arange(0, 200, 2)
    fit, val = inner_validation(train, 0.1, seed=3)
    assert len(val) == 10 and len(fit) == 90
    assert not set(fit) & set(val)
    assert set(fit) | set(val) == set(train)
    assert np.array_equal(val, inner_validation(train, 0.1, seed=3)[1])


def test_bad_fold_requests_are_clear_errors():
    with pytest.raises(DataError, match="at least 2 folds"):
        kfold_indices(10, 1)
    with pytest.raises(DataError, match="cannot make 5 folds from 3"):
        kfold_indices(3, 5)
    with pytest.raises(DataError, match="validation fraction"):
        inner_validation(np.arange(10), 1.5, 0)
    with pytest.raises(DataError, match="too few"):
        inner_validation(np.arange(1), 0.5, 0)
