import ase.build
import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from atomlens.errors import StructureError
from atomlens.graphs import CutoffParams, cutoff_graph
from atomlens.structures import from_ase, read_structures


def test_cutoff_graph_matches_ase_neighbor_list(crystal_file):
    from atomlens.structures import to_ase

    for structure in read_structures(crystal_file):
        graph = cutoff_graph(structure, CutoffParams(cutoff=6.0))
        i, j, shifts, d = neighbor_list("ijSd", to_ase(structure), 6.0)
        ours = sorted(zip(graph.centers, graph.neighbors, map(tuple, graph.shifts), strict=True))
        ref = sorted(zip(i, j, map(tuple, shifts), strict=True))
        assert ours == ref
        np.testing.assert_allclose(np.sort(graph.distance), np.sort(d), rtol=1e-10)


def test_cutoff_graph_molecule_has_no_images():
    graph = cutoff_graph(from_ase(ase.build.molecule("C6H6")), CutoffParams(cutoff=3.0))
    assert not graph.shifts.any()
    assert np.isnan(graph.solid_angle).all()


def test_cutoff_graph_errors():
    with pytest.raises(ValueError, match="cutoff must be positive"):
        cutoff_graph(from_ase(ase.build.molecule("H2O")), CutoffParams(cutoff=0))
    with pytest.raises(StructureError, match="isolated atom"):
        cutoff_graph(from_ase(ase.build.molecule("H2O")), CutoffParams(cutoff=0.5))


def test_widen_reaches_the_first_shell_of_a_large_alkali_crystal():
    cesium = from_ase(ase.build.bulk("Cs", "bcc", a=6.1))  # nearest neighbours at 5.28 A
    with pytest.raises(StructureError, match="isolated atom"):
        cutoff_graph(cesium, CutoffParams(cutoff=5.0))
    graph = cutoff_graph(cesium, CutoffParams(cutoff=5.0, widen=True))
    assert graph.num_edges == 8 and graph.distance.max() < 6.0  # the 8 bcc neighbours
    with pytest.raises(StructureError, match=r"cutoff \(2.0 A\)"):
        cutoff_graph(cesium, CutoffParams(cutoff=1.0, widen=True))  # widened to 2x at most


def test_symmetry_travels_with_the_graph_through_the_cache(crystal_file, tmp_path):
    from atomlens.batching import collate
    from atomlens.datasets import GraphDataset, build_graph_cache
    from atomlens.datasets.sources import load_source
    from atomlens.structures.symmetry import analyse_symmetry

    params = CutoffParams(cutoff=5.0, widen=True, symmetry=True)
    source = load_source(str(crystal_file))
    dataset = GraphDataset(
        build_graph_cache(source, "cutoff", params, cache_dir=tmp_path, workers=1, progress=False)
    )
    assert dataset.has_symmetry
    for k, structure in enumerate(source.structures):
        expected = analyse_symmetry(structure)
        stored = dataset.graph(k).symmetry
        assert stored.space_group == expected.space_group
        assert np.array_equal(stored.site_order, expected.site_order)
        assert np.array_equal(stored.multiplicity, expected.multiplicity)
    batch = collate(dataset, np.array([3, 0]))
    assert batch.space_group.tolist() == [
        analyse_symmetry(source.structures[3]).space_group,
        analyse_symmetry(source.structures[0]).space_group,
    ]
    assert batch.site_symmetry_order.shape == batch.numbers.shape
