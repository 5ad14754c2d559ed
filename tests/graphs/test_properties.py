"""Property tests on random crystals: closed cells and a symmetric periodic graph."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atomlens.errors import StructureError
from atomlens.graphs import VoronoiParams, voronoi_faces, voronoi_graph
from atomlens.structures import make_structure


@st.composite
def random_crystals(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n_atoms = draw(st.integers(1, 6))
    rng = np.random.default_rng(seed)
    lengths = rng.uniform(2.5, 7.0, size=3)
    cell = np.diag(lengths) + np.triu(rng.uniform(-1.5, 1.5, size=(3, 3)), k=1)
    positions = rng.uniform(0, 1, size=(n_atoms, 3)) @ cell
    numbers = rng.integers(1, 84, size=n_atoms)
    try:
        return make_structure(numbers, positions, cell, True, min_distance=1.0)
    except StructureError:
        return None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_crystals())
def test_cells_close_and_graph_is_symmetric(crystal):
    if crystal is None:
        return
    faces = voronoi_faces(crystal)
    totals = np.bincount(faces.centers, weights=faces.solid_angle, minlength=len(crystal))
    np.testing.assert_allclose(totals, 4 * np.pi, rtol=1e-6)

    graph = voronoi_graph(crystal, VoronoiParams(allow_isolated=True))
    forward = {
        (int(i), int(j), tuple(s)): (d, w)
        for i, j, s, d, w in zip(
            graph.centers,
            graph.neighbors,
            graph.shifts.tolist(),
            graph.distance,
            graph.solid_angle,
            strict=True,
        )
    }
    # A face seen from the other side: same solid angle and distance, opposite image.
    faces_back = {
        (int(i), int(j), tuple(s)): w
        for i, j, s, w in zip(
            faces.centers, faces.neighbors, faces.shifts.tolist(), faces.solid_angle, strict=True
        )
    }
    for (i, j, s), (_, w) in forward.items():
        back = (j, i, tuple(-x for x in s))
        assert abs(faces_back[back] - w) <= 1e-9 * max(w, 1.0)
