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
