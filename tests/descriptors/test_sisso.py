import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from atomlens.cli import main
from atomlens.descriptors import sisso as sisso_module
from atomlens.descriptors.sisso import (
    FeatureSpace,
    ScreeningWarning,
    auto_sis_size,
    best_subsets,
    cross_validate,
    display,
    evaluate,
    parse_ops,
    predict,
    sisso,
)
from atomlens.descriptors.splits import kfold

KB = 8.617333e-5


def paper_table(n=300, seed=0, noise=0.02):
    """ln D = -4.662 - 0.339 b - 0.0822 LNC + 1.3305 Li% + noise, with 40 distractors."""
    rng = np.random.default_rng(seed)
    b = 1 / (KB * rng.choice([1000.0, 1500.0, 2000.0, 2500.0], n))
    lnc = rng.uniform(2, 8, n)
    li = rng.uniform(0, 0.6, n)
    distractors = rng.normal(size=(n, 40)) + 0.3 * lnc[:, None] * rng.uniform(0, 1, 40)
    x = np.column_stack([b, lnc, li, distractors])
    names = ["inv_kBT", "LNC", "Li_frac"] + [f"d{i}" for i in range(40)]
    y = -4.662 - 0.339 * b - 0.0822 * lnc + 1.3305 * li + rng.normal(0, noise, n)
    return x, y, names


def test_best_subset_recovers_the_three_true_features():
    x, y, names = paper_table()
    result = sisso(x, y, names, ops=(), max_dim=3)
    assert result.n_candidates == 43
    assert result.l0_subsets == 43 + 903 + 12341  # every 1-, 2- and 3-subset: exact
    model = result.models[2]
    assert sorted(display(f, names) for f in model.features) == ["LNC", "Li_frac", "inv_kBT"]
    coef = dict(zip((display(f, names) for f in model.features), model.coefficients, strict=True))
    assert coef["inv_kBT"] == pytest.approx(-0.339, rel=0.01)
    assert coef["LNC"] == pytest.approx(-0.0822, rel=0.03)
    assert coef["Li_frac"] == pytest.approx(1.3305, rel=0.03)
    assert model.intercept == pytest.approx(-4.662, abs=0.05)
    assert model.rmse == pytest.approx(0.02, rel=0.2)
    assert [m.rmse for m in result.models] == sorted((m.rmse for m in result.models), reverse=True)


def test_nonlinear_formula_is_recovered_with_operators():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 3.0, (200, 6))
    y = 2.5 * x[:, 0] ** 2 / x[:, 1] + 1.0
    result = sisso(
        x,
        y,
        [f"x{i}" for i in range(6)],
        ops=parse_ops("+,-,*,/,^2,sqrt,exp"),
        complexity=2,
        max_dim=1,
    )
    model = result.models[0]
    np.testing.assert_allclose(evaluate(model.features[0], x), x[:, 0] ** 2 / x[:, 1], rtol=1e-10)
    assert model.coefficients[0] == pytest.approx(2.5, rel=1e-9)
    assert model.intercept == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(predict(model, x), y, rtol=1e-9)


def test_feature_space_counts_and_chunking_do_not_change_results():
    rng = np.random.default_rng(2)
    x = rng.uniform(1, 2, (50, 3))
    # level 0: 3; level 1 with '+' only: the 3 unordered pairs.
    assert FeatureSpace(x, ["a", "b", "c"], ("+",), complexity=1).size() == 6
    # '-' is ordered: 6 pairs, but a-b and b-a are the same up to sign (kept: SIS uses |r|).
    assert FeatureSpace(x, ["a", "b", "c"], ("-",), complexity=1).size() == 9
    y = x[:, 0] * x[:, 2] - 0.5 * np.sqrt(x[:, 1])
    settings = {"ops": ("*", "sqrt", "/"), "complexity": 2, "max_dim": 2, "sis_size": 5}
    small = sisso(x, y, ["a", "b", "c"], chunk_size=7, **settings)
    large = sisso(x, y, ["a", "b", "c"], chunk_size=100000, **settings)
    assert [m.features for m in small.models] == [m.features for m in large.models]
    assert small.n_candidates == large.n_candidates


def test_l0_matches_brute_force_least_squares():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 7))
    y = rng.normal(size=40)
    chosen, rss, solved = best_subsets(x, y, 2, chunk=4)
    assert solved == 21
    design = lambda cols: np.column_stack([np.ones(40), x[:, cols]])  # noqa: E731
    brute = {
        cols: np.sum((y - design(cols) @ np.linalg.lstsq(design(cols), y, rcond=None)[0]) ** 2)
        for cols in itertools.combinations(range(7), 2)
    }
    assert chosen == min(brute, key=brute.get)
    assert rss == pytest.approx(min(brute.values()), rel=1e-9)


def test_formulas_are_evaluated_safely():
    x = np.array([[1.0, 4.0]])
    assert evaluate("sqrt(f[1]) * (f[0])**-1", x)[0] == pytest.approx(2.0)
    assert display("sqrt(f[1]) * (f[0])**-1", ["T", "V"]) == "sqrt(V) * (T)^-1"
    for hostile in ("__import__('os').system('true')", "f.__class__", "open('x')"):
        with pytest.raises(ValueError, match="not a SISSO formula"):
            evaluate(hostile, x)
    with pytest.raises(ValueError, match="unknown operator"):
        parse_ops("+,sin")


def test_cross_validation_reruns_per_fold():
    x, y, names = paper_table(n=200, noise=0.05)
    folds = kfold(len(y), 4, seed=0)
    scores = cross_validate(x, y, names, folds, ops=(), max_dim=3)
    assert len(scores[3]) == 4
    assert np.mean(scores[3]) == pytest.approx(0.05, rel=0.3)
    assert np.mean(scores[1]) > np.mean(scores[3])


def test_sisso_command(tmp_path, capsys):
    x, y, names = paper_table(n=120)
    frame = pd.DataFrame(x, columns=names)
    frame["lnD"] = y
    frame["composition"] = [f"Li{i % 30}Si" for i in range(120)]
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    args = [
        "sisso",
        str(path),
        "--target",
        "lnD",
        "--ops",
        "",
        "--dim",
        "3",
        "--cv",
        "3",
        "--group-by",
        "composition",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "43 primary features" in printed and "D=3: lnD = " in printed
    report = json.loads((tmp_path / "table.sisso.json").read_text())
    assert sorted(report["models"][2]["features"]) == ["LNC", "Li_frac", "inv_kBT"]
    assert len(report["models"][2]["cv_rmse_folds"]) == 3
    # 43 primaries fit in the first (half-size) subspace: exact best subset, nothing to check
    assert report["screening_converged"] is True and report["screening_warning"] is None
    frame.loc[7, "lnD"] = np.nan
    frame.to_csv(path, index=False)
    assert main(args) == 1
    assert "row 9" in capsys.readouterr().err  # header is line 1: row index 7 is line 9
    assert main(["sisso", str(path), "--target", "nope"]) == 1
    assert "no column 'nope'" in capsys.readouterr().err


def issue_formula_table(n=200, p=10, seed=0):
    """y = 2.5 x1 x2 - 1.7 x3^2 / x4 + 0.3 on ten primaries in [0.5, 3] (issue 15 item 18)."""
    x = np.random.default_rng(seed).uniform(0.5, 3.0, (n, p))
    y = 2.5 * x[:, 0] * x[:, 1] - 1.7 * x[:, 2] ** 2 / x[:, 3] + 0.3
    return x, y, [f"x{i + 1}" for i in range(p)]


def test_default_screening_recovers_a_term_ranked_far_down():
    x, y, names = issue_formula_table()
    true_terms = np.column_stack([x[:, 0] * x[:, 1], x[:, 2] ** 2 / x[:, 3]])
    old = sisso(x, y, names, complexity=2, max_dim=2, sis_size=20)  # the old default
    assert old.models[1].r2 < 0.99
    result = sisso(x, y, names, complexity=2, max_dim=2)  # all ten operators
    assert result.sis_size == auto_sis_size(2) == 640 and result.sis_sizes_tried == [320, 640]
    assert result.converged is True and result.warning is None
    model = result.models[1]
    found = np.column_stack([evaluate(f, x) for f in model.features])
    # the two features are x1 x2 and x3^2 / x4 (in whatever written form), exactly
    correlation = np.corrcoef(found.T, true_terms.T)[:2, 2:]
    assert np.allclose(np.sort(np.abs(correlation).max(axis=0)), 1.0, atol=1e-12)
    np.testing.assert_allclose(predict(model, x), y, atol=1e-9)
    assert sorted(np.round(np.abs(model.coefficients), 9)) == [1.7, 2.5]
    assert model.intercept == pytest.approx(0.3, abs=1e-9)


def test_screening_warning_when_half_the_subspace_finds_other_models(monkeypatch):
    x, y, names = issue_formula_table()
    monkeypatch.setattr(sisso_module, "MAX_L0_SUBSETS", 3160)  # C(80, 2): 40 per dimension
    assert auto_sis_size(2) == 40 and auto_sis_size(3) >= 2
    with pytest.warns(ScreeningWarning, match="with 40 screened candidates"):
        result = sisso(x, y, names, complexity=2, max_dim=2)
    assert result.converged is False and result.sis_sizes_tried == [20, 40]


def test_default_screening_recovers_the_formula_at_three_dimensions():
    x, y, names = issue_formula_table()
    result = sisso(x, y, names, complexity=2, max_dim=3)
    assert result.sis_size == 164 and result.models[1].rmse < 1e-9


def test_sisso_command_prints_the_screening_warning(tmp_path, capsys, monkeypatch):
    x, y, names = issue_formula_table()
    frame = pd.DataFrame(x, columns=names)
    frame["y"] = y
    path = tmp_path / "issue.csv"
    frame.to_csv(path, index=False)
    monkeypatch.setattr(sisso_module, "MAX_L0_SUBSETS", 3160)
    args = ["sisso", str(path), "--target", "y", "--dim", "2", "--complexity", "2", "--cv", "0"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "40 screened candidates per dimension" in captured.out
    assert "warning: SISSO: the models with 40 screened candidates" in captured.err
    report = json.loads((tmp_path / "issue.sisso.json").read_text())
    assert report["sis_sizes_tried"] == [20, 40] and report["screening_converged"] is False


@pytest.mark.parametrize("dim", [2, 3])
def test_closed_form_l0_equals_batched_normal_equations(dim):
    rng = np.random.default_rng(dim)
    for trial in range(6):
        x = rng.normal(size=(80, 40))
        x[:, 5] = x[:, 7] + 1e-9 * rng.normal(size=80)  # a nearly collinear pair
        x[:, 9] = 2 * x[:, 2] - x[:, 3] + 1e-10 * rng.normal(size=80)  # and a triple
        noise = 0.3 if trial % 2 else 1e-6
        y = x[:, 3] - 0.5 * x[:, 11] + 0.2 * x[:, 30] + rng.normal(0, noise, 80)
        fast = best_subsets(x, y, dim)
        slow = best_subsets(x, y, dim, chunk=777, closed_form=False)
        assert fast[0] == slow[0] and fast[2] == slow[2] == math.comb(40, dim)
        total = float(np.sum((y - y.mean()) ** 2))  # RSS = total - drop: cancellation
        assert fast[1] == pytest.approx(slow[1], rel=1e-8, abs=1e-10 * total)
