import numpy as np
import pytest
from sklearn.model_selection import LeaveOneOut, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from atomlens.errors import DataError
from atomlens.explain.separability import knn_accuracy, project_2d, separability


def clusters(seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(3, 5))
    labels = np.repeat([0, 1, 2], 30)
    return centres[labels] + rng.normal(0, spread, size=(90, 5)), labels


def test_well_separated_clusters_score_one():
    vectors, labels = clusters(spread=0.05)
    assert knn_accuracy(vectors, labels, k=5) == 1.0


def test_agrees_with_scikit_learn_leave_one_out():
    vectors, labels = clusters(seed=1, spread=3.0)
    for k in (1, 3, 5):  # odd k: no ties between two classes among three neighbours
        model = make_pipeline(StandardScaler(), KNeighborsClassifier(k))
        # scikit-learn refits the scaler without the left-out point; ours scales once.
        reference = cross_val_score(model, vectors, labels, cv=LeaveOneOut()).mean()
        assert knn_accuracy(vectors, labels, k) == pytest.approx(reference, abs=0.03)


def test_separability_reports_chance_and_skips_unknown_groups():
    vectors, labels = clusters(spread=0.05)
    groups = np.array([2, 225, 194])[labels]  # triclinic, cubic, hexagonal
    groups[:3] = 0
    result = separability(vectors, groups)
    assert result["n"] == 87
    assert result["crystal_system_knn_accuracy"] == 1.0
    assert result["crystal_system_chance"] == pytest.approx(30 / 87)
    assert result["systems"] == {"triclinic": 27, "hexagonal": 30, "cubic": 30}


def test_pca_projection_keeps_the_largest_variance_direction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)) * [1, 1, 1]
    x[:, 1] = 3 * x[:, 0] + 0.01 * rng.normal(size=200)
    points = project_2d(x)
    assert points.shape == (200, 2)
    assert abs(np.corrcoef(points[:, 0], x[:, 0])[0, 1]) > 0.99


def test_too_few_points_and_unknown_projection_are_errors():
    with pytest.raises(DataError, match="needs more than 5"):
        knn_accuracy(np.zeros((4, 2)), np.zeros(4), k=5)
    with pytest.raises(DataError, match="unknown projection"):
        project_2d(np.zeros((10, 2)) + np.arange(10)[:, None], "umap")
