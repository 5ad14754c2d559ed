import json

import numpy as np
import pandas as pd
import pytest

from atomlens.cli import main
from atomlens.descriptors import models
from atomlens.descriptors.splits import kfold, row_split
from atomlens.descriptors.synthetic import diffusivity_table
from atomlens.descriptors.table import read_table
from atomlens.errors import DataError


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "diffusion.csv"
    diffusivity_table(n_compositions=60, composition_effect=0.8, seed=4).to_csv(path, index=False)
    return path


def test_grouped_folds_keep_compositions_together(table_file):
    table = read_table(table_file, "lnD", group_by="composition", exclude=("temperature",))
    assert len(table.feature_names) == 43 and table.x.shape == (240, 43)
    for train, test in kfold(len(table.y), 5, 0, table.groups):
        assert not set(table.groups[train]) & set(table.groups[test])
    train, test = row_split(len(table.y), 0.15, 62)
    assert len(test) == 36 and not set(train) & set(test)
    shared = set(table.groups[train]) & set(table.groups[test])
    assert len(shared) > 0.8 * len(set(table.groups[test]))  # the paper's leak, reproduced


def test_row_splits_flatter_scores_that_grouped_cv_reveals(table_file):
    table = read_table(table_file, "lnD", group_by="composition", exclude=("temperature",))
    grouped = models.cross_validate(
        table,
        "rf",
        kfold(240, 5, 0, table.groups),
        "grouped",
        permutation_repeats=1,
        progress=False,
    ).summary()
    rows = models.cross_validate(
        table, "rf", kfold(240, 5, 0), "kfold", permutation_repeats=1, progress=False
    ).summary()
    assert rows["r2"] > grouped["r2"] + 0.05
    assert rows["mae"] < grouped["mae"]


def test_uncertainty_is_tree_spread_and_bootstrap_spread(table_file):
    table = read_table(table_file, "lnD", exclude=("temperature",))
    forest = models.Ensemble("rf", seed=1).fit(table.x, table.y)
    mean, spread = forest.predict(table.x[:5])
    trees = np.stack([t.predict(table.x[:5]) for t in forest.model.estimators_])
    np.testing.assert_allclose(mean, trees.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(spread, trees.std(axis=0))
    boosted = models.Ensemble("xgboost", seed=1).fit(table.x, table.y)
    _, boot_spread = boosted.predict(table.x[:5])
    assert len(boosted.bootstrap) == models.BOOTSTRAP_MODELS and np.all(boot_spread > 0)


@pytest.mark.parametrize("kind", ["rf", "xgboost"])
def test_fit_table_and_predict_table_commands(table_file, tmp_path, kind, capsys):
    out = tmp_path / kind
    args = [
        "fit-table",
        str(table_file),
        "--target",
        "lnD",
        "--model",
        kind,
        "--exclude",
        "temperature",
        "--folds",
        "3",
        "--permutation-repeats",
        "1",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert "grouped CV (3 fold(s))" in capsys.readouterr().out
    scores = json.loads((out / "scores.json").read_text())
    assert scores["scheme"] == "grouped" and len(scores["folds"]) == 3
    importances = pd.read_csv(out / "importances.csv")
    assert importances["feature"].iloc[0] == "inv_kBT"  # temperature dominates ln D
    for name in ("parity.png", "importances.png", "predictions.csv", "model/model.json"):
        assert (out / name).is_file()
    predictions = tmp_path / "p.csv"
    assert (
        main(["predict-table", str(out / "model"), str(table_file), "--out", str(predictions)]) == 0
    )
    _, meta = models.load_model(out / "model")
    assert meta["target"] == "lnD" and meta["kind"] == kind
    table = read_table(table_file, "lnD", exclude=("temperature",))
    refit = models.Ensemble(kind, 62).fit(table.x, table.y)
    np.testing.assert_allclose(
        pd.read_csv(predictions)["predicted_lnD"], refit.predict(table.x)[0], rtol=1e-5
    )


def test_holdout_is_the_papers_sklearn_train_test_split(table_file, tmp_path):
    from sklearn.model_selection import train_test_split

    table = read_table(table_file, "lnD", exclude=("temperature",))
    x_train, x_test, _, y_test = train_test_split(table.x, table.y, test_size=0.15, random_state=62)
    train, test = row_split(len(table.y), 0.15, 62)
    np.testing.assert_array_equal(table.x[train], x_train)  # same rows, same order
    np.testing.assert_array_equal(table.x[test], x_test)
    np.testing.assert_array_equal(table.y[test], y_test)
    out = tmp_path / "holdout"
    args = ["fit-table", str(table_file), "--target", "lnD", "--model", "rf", "--cv", "holdout"]
    args += ["--exclude", "temperature", "--permutation-repeats", "1", "--out", str(out)]
    assert main(args) == 0
    held_out = pd.read_csv(out / "predictions.csv")["id"].astype(str)
    assert sorted(held_out) == sorted(table.ids[test].astype(str))
    with pytest.raises(DataError, match="cannot be split"):
        row_split(1, 0.15, 62)
    with pytest.raises(DataError, match="test fraction"):
        row_split(10, 1.5, 62)


def test_table_errors_name_file_row_and_column(tmp_path, capsys):
    frame = diffusivity_table(n_compositions=5, seed=1)
    frame.loc[3, "LNC"] = np.nan
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"bad.csv' row 5 .*feature 'LNC'"):
        read_table(path, "lnD")
    assert main(["fit-table", str(path), "--target", "lnD", "--group-by", "family"]) == 1
    assert "no column 'family'" in capsys.readouterr().err
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="not a readable CSV"):
        read_table(tmp_path / "empty.csv", "lnD")
    with pytest.raises(DataError, match="groups cannot make"):
        kfold(20, 5, 0, np.array(["a", "b"] * 10))
