import numpy as np
import pytest
import torch

from atomlens.batching import batch_from_graphs
from atomlens.explain.attention import explain
from atomlens.explain.faithfulness import faithfulness, mask_counts
from atomlens.structures import read_structures


@pytest.fixture(scope="module")
def explanations(molecule_predictor):
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))
    return explain(molecule_predictor, structures)


def test_subgraph_keeps_edges_between_kept_atoms(explanations):
    graph = explanations[5].graph
    keep = np.zeros(graph.num_atoms, dtype=bool)
    keep[[0, 2, 3]] = True
    sub = graph.subgraph(keep)
    assert sub.num_atoms == 3
    expected = {
        (int(c), int(n))
        for c, n in zip(graph.centers, graph.neighbors, strict=True)
        if keep[c] and keep[n]
    }
    remap = {0: 0, 2: 1, 3: 2}
    assert {(int(c), int(n)) for c, n in zip(sub.centers, sub.neighbors, strict=True)} == {
        (remap[c], remap[n]) for c, n in expected
    }
    np.testing.assert_array_equal(sub.numbers, graph.numbers[[0, 2, 3]])


def test_mask_counts_stay_in_range():
    deleted, kept = mask_counts(5, np.linspace(0, 1, 11))
    assert deleted.tolist() == [0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 4]
    assert kept.tolist() == [1, 1, 1, 2, 2, 2, 3, 4, 4, 4, 5]


def test_full_readout_mask_changes_nothing(molecule_predictor, explanations):
    graphs = [e.graph for e in explanations]
    batch = batch_from_graphs(graphs)
    model = molecule_predictor.model
    with torch.no_grad():
        plain = model(batch)
        masked = model(batch, readout_mask=torch.ones(batch.numbers.shape[0], dtype=torch.bool))
        keep = torch.ones(batch.numbers.shape[0], dtype=torch.bool)
        keep[0] = False  # drop atom 0 (methane's carbon) from the pooling only
        partial = model(batch, readout_mask=keep)
    torch.testing.assert_close(plain["prediction"], masked["prediction"])
    assert partial["atom_attention"][0] == 0
    assert partial["atom_attention"][:5].sum() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(partial["prediction"][1:], plain["prediction"][1:])
    assert partial["prediction"][0] != plain["prediction"][0]


@pytest.mark.parametrize("mode", ["atom", "readout"])
def test_curves_end_points_and_symmetry(molecule_predictor, explanations, mode):
    report = faithfulness(molecule_predictor, explanations, mode=mode, n_random=3, progress=False)
    assert len(report.names) == 12 and report.skipped == []
    for curves in (report.deletion, report.insertion):
        for values in curves.values():
            assert values.shape == (12, 11) and np.all(values >= 0)
    # Deleting nothing, or inserting everything, is the full structure: no change.
    for order in ("attention", "random", "least"):
        np.testing.assert_allclose(report.deletion[order][:, 0], 0, atol=1e-5)
        np.testing.assert_allclose(report.insertion[order][:, -1], 0, atol=1e-5)
    # Deleting the k least attended atoms is keeping the n - k most attended ones.
    for s, item in enumerate(explanations):
        deleted, kept = mask_counts(len(item.structure), report.fractions)
        for f, k in enumerate(deleted):
            g = np.flatnonzero(kept == len(item.structure) - k)
            for other in g:
                assert report.deletion["least"][s, f] == pytest.approx(
                    report.insertion["attention"][s, other], abs=1e-5
                )
    summary = report.summary()
    assert summary["n_structures"] == 12 and summary["mode"] == mode
    assert 0 <= summary["deletion_win_rate_vs_random"] <= 1
    areas = report.areas("deletion")["attention"]
    np.testing.assert_allclose(
        areas, np.trapezoid(report.deletion["attention"], report.fractions, axis=1)
    )


def test_single_atom_structures_are_skipped_and_bad_arguments(crystal_predictor):
    structures = list(read_structures("tests/data/mp_crystals_sample.extxyz"))
    items = explain(crystal_predictor, structures)
    report = faithfulness(crystal_predictor, items, n_random=1, progress=False)
    assert report.skipped == [e.name for e in items if len(e.structure) == 1]
    assert len(report.names) == len(items) - len(report.skipped)
    with pytest.raises(ValueError, match="mode"):
        faithfulness(crystal_predictor, items, mode="pixels")
    with pytest.raises(ValueError, match="at least two atoms"):
        faithfulness(crystal_predictor, [e for e in items if len(e.structure) == 1])
