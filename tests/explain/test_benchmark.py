"""The benchmark of explanations: bootstrap intervals, baselines, metrics, end to end on a toy."""

import copy
import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

from atomlens.errors import DataError
from atomlens.explain import attribution
from atomlens.explain.baselines import (
    BASELINES,
    atomic_number,
    attached_hydrogens,
    baseline_scores,
    centrality,
    fewest_h,
    heavy_atom,
)
from atomlens.explain.bootstrap import Interval, bootstrap_mean, paired_difference
from atomlens.explain.faithfulness import order_curves
from atomlens.explain.orbitals import DEGENERACY_EV
from atomlens.explain.validation import (
    METRICS,
    BenchmarkReport,
    benchmark_explanations,
    importance_order,
    rank_correlation,
    ranking_metrics,
    supported_methods,
    top1_hit,
)
from atomlens.files import write_csv, write_json_atomic
from atomlens.models import SenConfig
from atomlens.structures import read_structures
from atomlens.structures.record import make_structure
from tests.explain.toy_models import OXYGEN, oxygen_predictor

# Ethanol: C0 (CH3), C1 (CH2), O2, H3 on O, H4 H5 on C1, H6 H7 H8 on C0.
ETHANOL_Z = [6, 6, 8, 1, 1, 1, 1, 1, 1]
ETHANOL_XYZ = [
    [1.168, -0.400, 0.000],
    [0.000, 0.559, 0.000],
    [-1.190, -0.228, 0.000],
    [-1.947, 0.382, 0.000],
    [0.043, 1.208, 0.887],
    [0.043, 1.208, -0.887],
    [2.116, 0.145, 0.000],
    [1.129, -1.037, 0.886],
    [1.129, -1.037, -0.886],
]


@pytest.fixture()
def ethanol():
    return make_structure(ETHANOL_Z, ETHANOL_XYZ, source="ethanol.xyz", frame=0)


def _refuse_constant(name):
    raise AssertionError(f"non-standard JSON constant {name}")


# --- bootstrap ------------------------------------------------------------------------------


def test_bootstrap_interval_covers_the_true_mean_at_the_nominal_rate():
    true_mean, n, trials = 0.3, 40, 400
    covered = 0
    for trial in range(trials):
        draws = np.random.default_rng(1000 + trial)
        a = draws.normal(size=n)
        b = a - draws.normal(true_mean, 1.0, size=n)  # paired differences ~ N(0.3, 1)
        interval = paired_difference(a, b, n_resamples=1000, seed=trial)
        covered += interval.low <= true_mean <= interval.high
    # 95 % nominal; the percentile bootstrap runs slightly narrow at n = 40. The binomial
    # standard error over 400 trials is 1.1 points.
    assert 0.90 <= covered / trials <= 0.98


def test_constant_difference_gives_a_zero_width_interval():
    a = np.arange(12.0)
    shifted = paired_difference(a + 2.0, a, n_resamples=500)
    assert shifted == Interval(2.0, 2.0, 2.0, 12)
    assert shifted.excludes_zero
    same = paired_difference(a, a, n_resamples=500)
    assert (same.low, same.high) == (0.0, 0.0) and not same.excludes_zero


def test_bootstrap_drops_undefined_pairs_and_is_seeded():
    a = np.array([1.0, np.nan, 3.0, 4.0, 0.5])
    b = np.array([0.0, 1.0, np.nan, 1.0, 0.5])
    diff = paired_difference(a, b, n_resamples=300, seed=4)
    assert diff.n == 3 and diff.mean == pytest.approx((1 + 3 + 0) / 3)
    assert diff == paired_difference(a, b, n_resamples=300, seed=4)
    assert diff != paired_difference(a, b, n_resamples=300, seed=5)
    lone = bootstrap_mean(np.array([np.nan, 0.7]))
    assert lone.n == 1 and lone.mean == 0.7 and np.isnan(lone.low) and not lone.excludes_zero
    assert np.isnan(bootstrap_mean(np.array([np.nan])).mean)
    with pytest.raises(ValueError, match="equal shapes"):
        paired_difference(np.ones(3), np.ones(4))


# --- baselines ------------------------------------------------------------------------------


def test_baselines_rank_ethanol_as_a_chemist_would(ethanol):
    np.testing.assert_array_equal(heavy_atom(ethanol), [1, 1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(atomic_number(ethanol), ETHANOL_Z)
    np.testing.assert_array_equal(attached_hydrogens(ethanol), [3, 2, 1, 0, 0, 0, 0, 0, 0])
    # Fewest attached H: O (1 H) > CH2 > CH3 > every H.
    np.testing.assert_allclose(fewest_h(ethanol), [1 / 4, 1 / 3, 1 / 2, 0, 0, 0, 0, 0, 0])
    assert list(importance_order(fewest_h(ethanol), np.zeros(9))[:3]) == [2, 1, 0]
    # Closeness on the bond graph, (N - 1) / sum of bond-path lengths: CH2 is the centre.
    expected = 8 / np.array([13, 12, 17, 24, 19, 19, 20, 20, 20])
    np.testing.assert_allclose(centrality(ethanol), expected)
    scores = baseline_scores(ethanol, np.random.default_rng(3), draws=4)
    assert set(scores) == set(BASELINES) and scores["random"].shape == (4, 9)
    again = baseline_scores(ethanol, np.random.default_rng(3), draws=4)
    np.testing.assert_array_equal(scores["random"], again["random"])


def test_centrality_of_fragments_is_scaled_by_their_size():
    # H2 and, 10 Å away, a lone He: each H reaches 1 of 2 others at distance 1.
    structure = make_structure([1, 1, 2], [[0, 0, 0], [0.74, 0, 0], [10, 0, 0]])
    np.testing.assert_allclose(centrality(structure), [0.5, 0.5, 0.0])


# --- metrics --------------------------------------------------------------------------------


def test_spearman_over_heavy_atoms_only():
    heavy = np.array([True, True, True, False, False])
    weights = np.array([0.3, 0.1, 0.5, 0.05, 0.05])
    z = np.array([6.0, 6.0, 8.0, 1.0, 1.0])
    metrics = ranking_metrics(z, weights, heavy)
    # Heavy atoms: ranks (1.5, 1.5, 3) against (2, 1, 3): r = 1.5 / sqrt(1.5 * 2).
    assert metrics["spearman_heavy"] == pytest.approx(np.sqrt(3) / 2)
    # All atoms: ranks (3.5, 3.5, 5, 1.5, 1.5) against (4, 3, 5, 1.5, 1.5).
    assert metrics["spearman_all"] == pytest.approx(9 / np.sqrt(9 * 9.5))
    two_heavy = np.array([True, True, False, False, False])
    assert np.isnan(ranking_metrics(z, weights, two_heavy)["spearman_heavy"])
    # A constant importance ranks nothing (0); constant weights give no reference (NaN).
    assert rank_correlation(np.ones(5), weights) == 0.0
    assert np.isnan(rank_correlation(z, np.full(5, 0.2)))


def test_top1_ties_share_the_hit():
    weights = np.array([0.5, 0.1, 0.2, 0.2])
    assert top1_hit(np.array([3.0, 0, 0, 0]), weights) == 1.0
    assert top1_hit(np.array([0, 3.0, 0, 0]), weights) == 0.0
    assert top1_hit(np.array([1.0, 1.0, 0, 0]), weights) == 0.5  # two tied, one right
    assert top1_hit(np.ones(4), weights) == 0.25
    # Atoms tied for the largest orbital weight (symmetry) are all right.
    assert top1_hit(np.array([0, 0, 0, 1.0]), np.array([0.1, 0.3, 0.3, 0.3 - 1e-9])) == 1.0
    # Ties in the importance are broken by the tie-break key in faithfulness orders.
    assert list(importance_order(np.array([1.0, 2.0, 1.0]), np.array([0.9, 0.0, 0.1]))) == [
        1,
        2,
        0,
    ]


def test_verdict_follows_the_direction_of_each_metric():
    lower = Interval(-0.1, -0.2, -0.05, 10)
    assert BenchmarkReport.verdict("insertion", lower) == "better"  # smaller is better
    assert BenchmarkReport.verdict("deletion", lower) == "worse"
    assert BenchmarkReport.verdict("top1", Interval(0.1, -0.01, 0.2, 10)) == "no difference"


def test_report_json_is_strict_and_csv_has_empty_cells(tmp_path):
    names = ["a", "b", "c"]
    nan = np.full(3, np.nan)
    values = {m: {"attention": np.array([0.2, 0.4, 0.3]), "random": nan.copy()} for m in METRICS}
    values["spearman_heavy"]["attention"] = nan.copy()
    report = BenchmarkReport(
        reference="homo",
        names=names,
        methods=["attention"],
        baselines=["random"],
        values=values,
        settings={},
        n_resamples=200,
    )
    summary = report.summary()
    assert summary["best_baseline"]["top1"] is None
    text = write_json_atomic(tmp_path / "b.json", summary).read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = json.loads(text, parse_constant=_refuse_constant)
    assert loaded["scores"]["attention"]["spearman_heavy"]["mean"] is None
    assert loaded["scores"]["attention"]["top1"]["mean"] == pytest.approx(0.3)
    assert loaded["comparisons"]["attention"]["top1"]["verdict"] == "no difference"
    assert loaded["per_molecule"]["spearman_heavy"]["attention"] == [None] * 3
    path = write_csv(tmp_path / "b.csv", *report.csv_rows())
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    heavy = next(r for r in rows if r["name"] == "attention" and r["metric"] == "spearman_heavy")
    assert heavy["mean"] == "" and heavy["verdict"] == "no difference"
    assert "| `attention` |" in report.markdown() and "–" in report.text_table()


# --- end to end on a toy model --------------------------------------------------------------


@pytest.fixture(scope="module")
def toy(molecule_predictor):
    return oxygen_predictor(molecule_predictor, 2.0)


@pytest.fixture(scope="module")
def with_oxygen():
    """The shipped QM9 molecules with exactly one O (H2O, CH2O, C5H6O, C5H7NO)."""
    molecules = list(read_structures("tests/data/qm9_sample.extxyz"))
    return [m for m in molecules if list(m.numbers).count(OXYGEN) == 1]


def oxygen_weights(structure):
    """Fake orbital: 0.9 on the O atom, the rest shared equally."""
    n = len(structure)
    return np.where(structure.numbers == OXYGEN, 0.9, 0.1 / (n - 1))


TOY_METHODS = ["attention", "gradient_input", "integrated_gradients", "occlusion", "shapley"]


def test_benchmark_finds_the_one_atom_the_toy_model_uses(toy, with_oxygen, tmp_path):
    assert len(with_oxygen) == 4
    report = benchmark_explanations(
        toy,
        with_oxygen,
        oxygen_weights,
        reference="homo",
        methods=TOY_METHODS,
        options={"samples": 8, "steps": 4},
        n_resamples=300,
        score_cache=tmp_path / "scores",
        progress=False,
    )
    assert report.candidates == [*TOY_METHODS, *BASELINES]
    for method in TOY_METHODS[1:]:  # non-zero on O only
        assert report.values["top1"][method].tolist() == [1.0] * 4
        # Both rankings are "O, then all others tied": a perfect rank correlation.
        np.testing.assert_allclose(report.values["spearman_all"][method], 1.0)
        # Keeping O first recovers the full prediction at once: zero insertion area.
        np.testing.assert_array_equal(report.values["insertion"][method], 0.0)
        assert np.all(report.values["deletion"][method] > 0)
    # Uniform attention ties every atom: its top-1 hit is 1/N.
    sizes = np.array([len(m) for m in with_oxygen])
    np.testing.assert_allclose(report.values["top1"]["attention"], 1 / sizes)
    assert report.values["spearman_all"]["attention"].tolist() == [0.0] * 4
    # Deletion area of an O-first order, exactly: the change is |prediction| = std x |model
    # output| at every fraction that removes at least one atom, so |model output| after
    # normalisation by the std.
    with torch.no_grad():
        value = abs(float(toy.model.embedding.weight[OXYGEN] @ toy.model.weight))
    fractions = np.linspace(0, 1, 11)
    expected = []
    for n in sizes:
        curve = np.where(np.minimum(np.rint(fractions * n), n - 1) >= 1, value, 0.0)
        expected.append(np.trapezoid(curve, fractions))
    np.testing.assert_allclose(report.values["deletion"]["occlusion"], expected, rtol=1e-5)
    summary = report.summary()
    assert summary["best_baseline"]["insertion"] in BASELINES
    occlusion = summary["comparisons"]["occlusion"]["top1"]
    assert occlusion["difference"] >= 0 and occlusion["verdict"] in ("better", "no difference")
    assert summary["settings"]["faithfulness"]["target_std"] == 2.0
    assert summary["settings"]["orbital"]["degeneracy_ev"] == DEGENERACY_EV


def test_benchmark_reuses_stored_scores(toy, with_oxygen, tmp_path, monkeypatch):
    calls = []

    def counting(structure):
        calls.append(structure)
        return oxygen_weights(structure)

    kwargs = dict(reference="lumo", methods=["occlusion"], n_resamples=100, progress=False)
    first = benchmark_explanations(toy, with_oxygen[:3], counting, score_cache=tmp_path, **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError("computed again although stored")

    stored = attribution.METHODS["occlusion"]
    monkeypatch.setitem(
        attribution.METHODS, "occlusion", dataclasses.replace(stored, function=refuse)
    )
    again = benchmark_explanations(toy, with_oxygen[:3], counting, score_cache=tmp_path, **kwargs)
    np.testing.assert_array_equal(
        first.values["top1"]["occlusion"], again.values["top1"]["occlusion"]
    )
    with pytest.raises(AssertionError, match="computed again"):  # a new molecule is computed
        benchmark_explanations(toy, with_oxygen, counting, score_cache=tmp_path, **kwargs)


def test_benchmark_skips_failed_molecules_and_refuses_bad_input(toy, with_oxygen):
    def failing(structure):
        if len(structure) == 3:
            raise structure.fail("the SCF did not converge")
        return oxygen_weights(structure)

    report = benchmark_explanations(
        toy, with_oxygen, failing, reference="homo", methods=["occlusion"], progress=False
    )
    assert len(report.names) == 3 and len(report.skipped) == 1
    ((name, reason),) = report.skipped.items()
    assert name not in report.names and "did not converge" in reason
    with pytest.raises(DataError, match="orbital weights for"):
        benchmark_explanations(
            toy, with_oxygen, lambda s: np.ones(2), reference="homo", methods=[], progress=False
        )
    with pytest.raises(DataError, match="random-draws"):
        benchmark_explanations(toy, with_oxygen, failing, reference="homo", random_draws=0)


def test_order_curves_refuse_bad_orders_and_fractions(toy):
    graphs = attribution.as_graphs(toy, list(read_structures("tests/data/qm9_sample.extxyz"))[:2])
    orders = [[np.arange(g.num_atoms)] for g in graphs]
    with pytest.raises(ValueError, match="start at 0"):
        order_curves(toy, graphs, orders, np.array([0.5, 1.0]), progress=False)
    with pytest.raises(ValueError, match="one list of orders per structure"):
        order_curves(toy, graphs, orders[:1], np.linspace(0, 1, 3), progress=False)
    deletion, insertion = order_curves(toy, graphs, orders, np.linspace(0, 1, 3), progress=False)
    assert deletion.shape == insertion.shape == (2, 1, 3)
    np.testing.assert_array_equal(deletion[:, :, 0], 0.0)  # nothing deleted: no change


def test_supported_methods_follow_the_model_capabilities(molecule_predictor):
    assert supported_methods(molecule_predictor) == list(attribution.METHODS)
    sen_like = copy.copy(molecule_predictor)
    sen_like.config = molecule_predictor.config.model_copy(update={"model": SenConfig()})
    assert "rollout" not in supported_methods(sen_like)
    assert "attention" in supported_methods(sen_like)
