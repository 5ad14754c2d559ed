import numpy as np
import pytest
import torch

from atomlens.batching import collate, iterate_batches
from atomlens.datasets import GraphDataset, build_graph_cache, load_source


@pytest.fixture
def dataset(tmp_path, molecule_file):
    source = load_source(str(molecule_file), targets=["homo", "lumo"])
    return GraphDataset(build_graph_cache(source, cache_dir=tmp_path, workers=1, progress=False))


def test_batch_equals_graphs_one_by_one(dataset):
    indices = np.array([4, 0, 9, 2])
    batch = collate(dataset, indices)
    offset = 0
    for b, k in enumerate(indices):
        graph = dataset.graph(int(k))
        atoms = batch.graph_index == b
        assert int(atoms.sum()) == graph.num_atoms == int(batch.num_atoms[b])
        assert torch.equal(batch.numbers[atoms], torch.from_numpy(graph.numbers))
        edges = (batch.centers >= offset) & (batch.centers < offset + graph.num_atoms)
        assert torch.equal(batch.centers[edges] - offset, torch.from_numpy(graph.centers))
        assert torch.equal(batch.neighbors[edges] - offset, torch.from_numpy(graph.neighbors))
        np.testing.assert_allclose(batch.solid_angle[edges].numpy(), graph.solid_angle, rtol=1e-6)
        np.testing.assert_allclose(batch.targets[b].numpy(), dataset.targets[k], rtol=1e-6)
        offset += graph.num_atoms
    assert batch.num_graphs == 4 and batch.index.tolist() == indices.tolist()


def test_iterate_batches_covers_everything_once(dataset):
    seen = torch.cat(
        [
            b.index
            for b in iterate_batches(dataset, np.arange(len(dataset)), 5, shuffle=True, seed=3)
        ]
    )
    assert sorted(seen.tolist()) == list(range(len(dataset)))
    again = torch.cat(
        [
            b.index
            for b in iterate_batches(dataset, np.arange(len(dataset)), 5, shuffle=True, seed=3)
        ]
    )
    assert torch.equal(seen, again)
    dropped = list(iterate_batches(dataset, np.arange(len(dataset)), 5, drop_last=True))
    assert all(b.num_graphs == 5 for b in dropped)
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_batches(dataset, np.arange(3), 0))
