import copy
import json
from types import SimpleNamespace

import ase.io
import numpy as np
import pytest
import torch

from atomlens.cli import main
from atomlens.config import validate_config
from atomlens.datasets.cache import graphs_of, make_params
from atomlens.errors import DataError
from atomlens.explain import attribution
from atomlens.explain.attention import explain
from atomlens.explain.attribution import (
    METHODS,
    as_graphs,
    attribute,
    embedding_pass,
    propagate_rollout,
    rollout_matrix,
)
from atomlens.explain.faithfulness import faithfulness
from atomlens.models import SenConfig, build_model, graph_spec
from atomlens.structures import read_structures
from atomlens.training.scaling import Scaling
from tests.explain.toy_models import OXYGEN, oxygen_predictor


@pytest.fixture(scope="module")
def molecules():
    return list(read_structures("tests/data/qm9_sample.extxyz"))


@pytest.fixture(scope="module")
def toy(molecule_predictor):
    return oxygen_predictor(molecule_predictor, 1.0)  # empty coalition = 0 = no O


def _expected(toy, graph) -> np.ndarray:
    """Analytic scores of the toy: w . e_O on the O atom (one O per molecule), 0 elsewhere."""
    model = toy.model
    with torch.no_grad():
        value = float(model.embedding.weight[OXYGEN] @ model.weight)
    return np.where(graph.numbers == OXYGEN, value, 0.0)


# H2O, CH2O, C5H6O and C5H7NO have exactly one O; CH4 and C2H2 have none.
ONE_OXYGEN = [1, 3, 6, 7]
NO_OXYGEN = [0, 2]


@pytest.mark.parametrize(
    "method", ["occlusion", "shapley", "gradient_input", "integrated_gradients"]
)
def test_toy_model_weight_goes_to_the_one_atom_that_matters(toy, molecules, method):
    chosen = [molecules[k] for k in ONE_OXYGEN + NO_OXYGEN]
    graphs = as_graphs(toy, chosen)
    scores = attribute(toy, graphs, method, samples=16, steps=8)
    assert len(scores) == len(chosen)
    for graph, values in zip(graphs, scores, strict=True):
        assert values.shape == (graph.num_atoms,)
        np.testing.assert_allclose(values, _expected(toy, graph), atol=1e-6)
    assert any(abs(v).max() > 0.1 for v in scores)  # the toy's O weight is not ~0


def test_integrated_gradients_completeness(molecule_predictor, molecules):
    graphs = as_graphs(molecule_predictor, molecules)
    scores = attribute(molecule_predictor, graphs, "integrated_gradients", steps=64)
    full, _ = embedding_pass(molecule_predictor, graphs, np.ones(len(graphs)), gradient=False)
    zero, _ = embedding_pass(molecule_predictor, graphs, np.zeros(len(graphs)), gradient=False)
    totals = np.array([s.sum() for s in scores])
    gap = full - zero
    assert np.abs(gap).max() > 1e-3  # the zero embedding does change the prediction
    np.testing.assert_allclose(totals, gap, rtol=1e-3, atol=1e-4)  # steps=1 misses by 2e-2
    # full agrees with the plain prediction (the hook at scale 1 changes nothing)
    plain = np.array([p.value for p in molecule_predictor.predict(molecules)])
    np.testing.assert_allclose(full, plain, rtol=1e-5, atol=1e-5)


def test_gradient_input_matches_autograd_on_the_real_model(molecule_predictor, molecules):
    graphs = as_graphs(molecule_predictor, molecules[5:7])
    scores = attribute(molecule_predictor, graphs, "gradient_input")
    model = molecule_predictor.model
    from atomlens.batching import batch_from_graphs

    graph = graphs[1]
    with torch.enable_grad():
        e = model.embedding(torch.as_tensor(graph.numbers)).detach().requires_grad_(True)
        handle = model.embedding.register_forward_hook(lambda m, a, o: e)
        try:
            y = molecule_predictor.scaling.to_physical(
                model(batch_from_graphs([graph]))["prediction"]
            )
            (grad,) = torch.autograd.grad(y.sum(), e)
        finally:
            handle.remove()
    np.testing.assert_allclose(scores[1], (grad * e).sum(-1).detach().numpy(), rtol=1e-5, atol=1e-7)


def test_shapley_efficiency_and_seed(molecule_predictor, molecules):
    chosen = molecules[:4]
    values = np.array([p.value for p in molecule_predictor.predict(chosen)])
    first = attribute(molecule_predictor, chosen, "shapley", samples=12, seed=3)
    again = attribute(molecule_predictor, chosen, "shapley", samples=12, seed=3)
    other = attribute(molecule_predictor, chosen, "shapley", samples=12, seed=4)
    base = molecule_predictor.scaling.mean
    for k in range(len(chosen)):
        assert first[k].sum() == pytest.approx(values[k] - base, abs=1e-4)
        np.testing.assert_array_equal(first[k], again[k])
    assert any(not np.allclose(a, b) for a, b in zip(first, other, strict=True))


def test_shapley_groups_do_not_change_the_estimate(molecule_predictor, molecules, monkeypatch):
    together = attribute(molecule_predictor, molecules[:5], "shapley", samples=6, seed=1)
    monkeypatch.setattr(attribution, "SHAPLEY_GROUP", 1)  # one structure per group
    apart = attribute(molecule_predictor, molecules[:5], "shapley", samples=6, seed=1)
    # Predictions of ~5 eV in float32 round at ~5e-7 eV, and batches of other sizes sum in
    # another order: equal to float32 rounding, far below the scores (~0.05 eV).
    for a, b in zip(together, apart, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=5e-6)


def test_occlusion_is_the_change_when_the_atom_is_removed(molecule_predictor, molecules):
    water = molecules[1]
    scores = attribute(molecule_predictor, [water], "occlusion")[0]
    graph = as_graphs(molecule_predictor, [water])[0]
    full = molecule_predictor.predict([water])[0].value
    for atom in range(3):
        keep = np.ones(3, dtype=bool)
        keep[atom] = False
        sub, _ = embedding_pass(molecule_predictor, [graph.subgraph(keep)], [1.0], gradient=False)
        assert scores[atom] == pytest.approx(full - sub[0], abs=1e-5)


def test_rollout_matrix_rows_and_identity():
    rng = np.random.default_rng(0)
    n = 5
    centers = np.repeat(np.arange(n), 3)
    neighbors = np.array([(i + d) % n for i in range(n) for d in (1, 2, 3)])
    layers = [rng.random(len(centers)) for _ in range(3)]
    matrix = rollout_matrix(layers, centers, neighbors, n)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    assert (matrix >= 0).all()
    alpha = rng.dirichlet(np.ones(n))
    np.testing.assert_allclose(propagate_rollout(alpha, layers, centers, neighbors), alpha @ matrix)
    # local layers that attend only to self: the rollout is the identity, scores = attention
    own = np.arange(n)
    selfish = [np.ones(n), np.ones(n)]
    np.testing.assert_allclose(rollout_matrix(selfish, own, own, n), np.eye(n))
    np.testing.assert_allclose(propagate_rollout(alpha, selfish, own, own), alpha)
    # no layers at all: the attention itself
    np.testing.assert_allclose(propagate_rollout(alpha, [], centers, neighbors), alpha)


def test_rollout_on_the_trained_model(molecule_predictor, molecules):
    from atomlens.batching import batch_from_graphs

    graphs = as_graphs(molecule_predictor, molecules)
    scores = attribute(molecule_predictor, graphs, "rollout")
    attention = attribute(molecule_predictor, graphs, "attention")
    graph = graphs[9]
    with torch.no_grad():
        output = molecule_predictor.model(batch_from_graphs([graph]), return_local_attention=True)
    layers = [w.double().mean(1).numpy() for w in output["local_attention"]]
    assert len(layers) == 2
    matrix = rollout_matrix(layers, graph.centers, graph.neighbors, graph.num_atoms)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    np.testing.assert_allclose(scores[9], attention[9] @ matrix, rtol=1e-6, atol=1e-9)
    for values in scores:
        assert values.sum() == pytest.approx(1.0, abs=1e-6)
        assert (values >= 0).all()
    assert not np.allclose(scores[9], attention[9])


def test_missing_capability_is_one_line(molecule_predictor, molecules):
    sen_like = copy.copy(molecule_predictor)
    sen_like.config = molecule_predictor.config.model_copy(update={"model": SenConfig()})
    with pytest.raises(DataError, match="local attention; model 'sen' has none") as info:
        attribute(sen_like, molecules[:1], "rollout")
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="unknown attribution method 'lime'"):
        attribute(molecule_predictor, molecules[:1], "lime")


def test_default_method_is_rollout_where_the_model_has_local_attention(
    molecule_predictor, molecules
):
    from atomlens.explain.attribution import default_method

    assert default_method(molecule_predictor) == "rollout"
    items = explain(molecule_predictor, molecules[:3])
    rolled = attribute(molecule_predictor, molecules[:3], "rollout")
    for item, expected in zip(items, rolled, strict=True):
        assert item.method == "rollout"
        np.testing.assert_allclose(item.scores, expected)
    sen_like = copy.copy(molecule_predictor)
    sen_like.config = molecule_predictor.config.model_copy(update={"model": SenConfig()})
    assert default_method(sen_like) == "attention"  # no local attention to roll out


def test_explain_and_faithfulness_use_the_method(toy, molecules):
    chosen = [molecules[k] for k in ONE_OXYGEN]
    items = explain(toy, chosen, method="occlusion")
    assert all(item.method == "occlusion" for item in items)
    for item in items:
        np.testing.assert_allclose(item.scores, _expected(toy, item.graph), atol=1e-6)
        np.testing.assert_allclose(item.attention, 1.0 / len(item.structure))
    report = faithfulness(toy, items, n_random=2, progress=False)
    assert report.summary()["method"] == "occlusion"
    # deleting the O first removes the whole prediction at the first deleted fraction > 0
    deletion = report.deletion["attention"]
    values = np.array([abs(_expected(toy, item.graph)).sum() for item in items])
    fractions = report.fractions
    for s, item in enumerate(items):
        n = len(item.structure)
        first = np.flatnonzero(np.rint(fractions * n) >= 1)[0]
        assert deletion[s, first] == pytest.approx(values[s], abs=1e-6)


def test_cli_method_writes_the_column(molecule_run, tmp_path, capsys):
    out = tmp_path / "out"
    main(
        [
            "explain",
            str(molecule_run),
            "tests/data/qm9_sample.extxyz",
            "--out",
            str(out),
            "--method",
            "shapley",
            "--samples",
            "4",
            "--figures",
            "0",
            "--faithfulness",
        ]
    )
    printed = capsys.readouterr().out
    assert "from 4 sampled permutations" in printed
    assert "order is that of the shapley scores" in printed
    assert json.loads((out / "faithfulness.json").read_text())["method"] == "shapley"
    frames = ase.io.read(out / "explanations.extxyz", index=":")
    assert len(frames) == 12
    for atoms in frames:
        assert "atomlens_shapley" in atoms.arrays
        assert "atomlens_attention" in atoms.arrays
    header = (out / "atoms.csv").read_text().splitlines()[0].split(",")
    assert header[-1] == "shapley"


def test_every_method_is_registered_with_its_needs():
    from atomlens.cli.explain import ATTRIBUTION_METHODS

    # The CLI's light copy of the names (kept out of torch's import path) matches the registry.
    assert set(METHODS) == set(ATTRIBUTION_METHODS)
    assert "local_attention" in METHODS["rollout"].needs
    assert METHODS["shapley"].options == ("samples", "seed")


@pytest.fixture(scope="module")
def tiny_sen():
    """An untrained tiny SEN with the graphs of three sample crystals (no training run)."""
    config = validate_config(
        {
            "data": {"source": "tests/data/mp_crystals_sample.extxyz", "target": "x"},
            "model": {"name": "sen", "width": 8, "composition_dim": 8, "conv_channels": 4}
            | {"head_dim": 8},
        }
    )
    torch.manual_seed(0)
    predictor = SimpleNamespace(
        config=config, model=build_model(config.model).eval(), scaling=Scaling(-1.0, 2.0)
    )
    kind, params = graph_spec(config.model, config.data.graph)
    crystals = list(read_structures("tests/data/mp_crystals_sample.extxyz"))[:3]
    graphs = graphs_of(crystals, kind, make_params(kind, **params))
    return predictor, graphs


def test_sen_gradient_methods_and_masks(tiny_sen):
    predictor, graphs = tiny_sen
    full, _ = embedding_pass(predictor, graphs, np.ones(len(graphs)), gradient=False)
    zero, _ = embedding_pass(predictor, graphs, np.zeros(len(graphs)), gradient=False)
    assert np.abs(full - zero).max() > 1e-4
    scores = attribute(predictor, graphs, "integrated_gradients", steps=64)
    np.testing.assert_allclose([s.sum() for s in scores], full - zero, rtol=1e-2, atol=1e-4)
    for method in ("gradient_input", "occlusion", "shapley"):
        values = attribute(predictor, graphs, method, samples=4)
        assert [len(v) for v in values] == [g.num_atoms for g in graphs]
        assert all(np.isfinite(v).all() for v in values)
    shapley = attribute(predictor, graphs, "shapley", samples=4)
    np.testing.assert_allclose([s.sum() for s in shapley], full + 1.0, atol=1e-4)  # f - mean
    with pytest.raises(DataError, match="local attention; model 'sen' has none"):
        attribute(predictor, graphs, "rollout")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--method", "shapley", "--samples", "0"], "--samples must be at least 1, got 0"),
        (["--method", "integrated_gradients", "--steps", "-1"], "--steps must be at least 1"),
    ],
)
def test_cli_bad_sample_counts_are_one_line_errors(molecule_run, tmp_path, capsys, option, message):
    files = ["tests/data/qm9_sample.extxyz", "--out", str(tmp_path / "out")]
    assert main(["explain", str(molecule_run), *files, *option]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and "\n" not in err
