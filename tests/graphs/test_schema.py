"""One field schema drives the cache, collate, batch_from_graphs and subgraphs."""

import pickle

import numpy as np
import pytest
import torch

from atomlens.batching import Batch, batch_from_graphs, collate
from atomlens.datasets import GraphDataset, build_graph_cache, load_source
from atomlens.graphs import CutoffParams
from atomlens.graphs.graph import Graph
from atomlens.graphs.schema import BATCH_FIELDS, FIELDS, FieldSpec, group_fields


@pytest.fixture(scope="module")
def symmetric_dataset(tmp_path_factory):
    source = load_source("tests/data/mp_crystals_sample.extxyz")
    params = CutoffParams(cutoff=5.0, widen=True, symmetry=True)
    path = build_graph_cache(
        source, "cutoff", params, cache_dir=tmp_path_factory.mktemp("c"), workers=1, progress=False
    )
    return GraphDataset(path)


def _assert_same_graph(a: Graph, b: Graph) -> None:
    assert sorted(a.values()) == sorted(b.values())
    for name, value in a.values().items():
        np.testing.assert_allclose(value, b.values()[name], rtol=1e-6, err_msg=name)


def test_every_schema_field_round_trips_cache_batch_and_subgraph(symmetric_dataset):
    dataset = symmetric_dataset
    assert {f.name for f in FIELDS} <= set(dataset.arrays)  # symmetry included
    indices = np.array([5, 0, 11])
    graphs = [dataset.graph(int(k)) for k in indices]
    assert all(g.has_group("symmetry") for g in graphs)
    from_cache, from_graphs = collate(dataset, indices), batch_from_graphs(graphs)
    for spec in FIELDS:
        a, b = getattr(from_cache, spec.name), getattr(from_graphs, spec.name)
        assert a is not None and a.dtype == b.dtype, spec.name
        torch.testing.assert_close(a, b, equal_nan=True, msg=spec.name)
    rows = {"graph": len(indices), "node": int(from_cache.num_atoms.sum())}
    rows["edge"] = sum(g.num_edges for g in graphs)
    for spec in FIELDS:
        assert getattr(from_cache, spec.name).shape[0] == rows[spec.level], spec.name
    # A subgraph keeps every field, symmetry included, and renumbers the edge indices.
    graph = graphs[0]
    keep = np.arange(graph.num_atoms) % 2 == 0
    sub = graph.subgraph(keep)
    assert sorted(sub.values()) == sorted(graph.values())
    assert sub.space_group == graph.space_group
    np.testing.assert_array_equal(sub.site_symmetry_order, graph.site_symmetry_order[keep])
    kept_edges = keep[graph.centers] & keep[graph.neighbors]
    np.testing.assert_array_equal(sub.distance, graph.distance[kept_edges])
    old = np.flatnonzero(keep)
    np.testing.assert_array_equal(old[sub.centers], graph.centers[kept_edges])
    np.testing.assert_array_equal(old[sub.neighbors], graph.neighbors[kept_edges])
    assert batch_from_graphs([sub]).space_group.tolist() == [int(graph.space_group)]


def test_graph_pickles_and_replaces_and_checks_its_fields(symmetric_dataset):
    graph = symmetric_dataset.graph(3)
    _assert_same_graph(pickle.loads(pickle.dumps(graph)), graph)
    plain = graph.replace(**{f.name: None for f in group_fields("symmetry")})
    assert plain.symmetry is None and plain.space_group is None
    assert plain.with_symmetry(graph.symmetry).space_group == graph.space_group
    with pytest.raises(TypeError, match="unknown graph field"):
        graph.replace(colour=np.zeros(3))
    with pytest.raises(TypeError, match="all together or not at all"):
        plain.replace(space_group=225)
    with pytest.raises(TypeError, match="needs the field 'distance'"):
        graph.replace(distance=None)
    with pytest.raises(AttributeError, match="immutable"):
        graph.numbers = graph.numbers


def test_optional_group_is_batched_only_when_every_graph_has_it(symmetric_dataset):
    graphs = [symmetric_dataset.graph(k) for k in range(3)]
    mixed = [graphs[0], graphs[1].replace(**{f.name: None for f in group_fields("symmetry")})]
    batch = batch_from_graphs(mixed)
    assert batch.space_group is None and batch.site_symmetry_order is None
    assert batch_from_graphs(graphs).space_group is not None


def test_batch_fields_and_moves():
    names = [f.name for f in (*FIELDS, *BATCH_FIELDS)]
    assert len(names) == len(set(names))
    assert all(isinstance(f, FieldSpec) and f.level in ("graph", "node", "edge") for f in FIELDS)
    assert all(f.kind != "index" or f.level == "edge" for f in FIELDS)
    with pytest.raises(TypeError, match="needs the field"):
        Batch({"numbers": torch.zeros(2, dtype=torch.long)})


def test_batch_to_device_keeps_every_tensor(molecule_file, tmp_path):
    source = load_source(str(molecule_file), targets=["homo"])
    dataset = GraphDataset(build_graph_cache(source, cache_dir=tmp_path, workers=1, progress=False))
    batch = collate(dataset, np.arange(4))
    moved = batch.to("cpu", non_blocking=True)
    assert sorted(moved.tensors()) == sorted(batch.tensors())
    assert moved.num_graphs == 4 and moved.space_group is None
