import ase.build
import numpy as np
import pytest

from atomlens.errors import StructureError
from atomlens.graphs import VoronoiParams, voronoi_faces, voronoi_graph
from atomlens.graphs.reference import pymatgen_molecule_faces, pymatgen_voronoi_graph
from atomlens.graphs.voronoi import _GHOST_DIRECTIONS
from atomlens.structures import from_ase, make_structure, read_structures

FOUR_PI = 4 * np.pi


def edge_table(graph):
    """{(center, neighbor, shift): solid angle}."""
    return {
        (int(c), int(n), tuple(int(x) for x in s)): float(w)
        for c, n, s, w in zip(
            graph.centers, graph.neighbors, graph.shifts, graph.solid_angle, strict=True
        )
    }


@pytest.mark.parametrize(
    ("atoms", "degree", "angle"),
    [
        (ase.build.bulk("Cu", "fcc", a=3.6), 12, FOUR_PI / 12),
        (ase.build.bulk("NaCl", "rocksalt", a=5.64), 6, FOUR_PI / 6),
        (ase.build.bulk("Po", "sc", a=3.3), 6, FOUR_PI / 6),
    ],
)
def test_known_exact_solid_angles(atoms, degree, angle):
    graph = voronoi_graph(from_ase(atoms))
    assert np.all(graph.degree() == degree)
    np.testing.assert_allclose(graph.solid_angle, angle, rtol=1e-10)
    np.testing.assert_allclose(graph.solid_angle_ratio, 1.0, rtol=1e-10)


def test_bcc_faces_and_filters():
    # bcc Voronoi cell: 8 hexagons (nearest) and 6 squares (second neighbours).
    faces = voronoi_faces(from_ase(ase.build.bulk("Fe", "bcc", a=2.87)))
    big = faces.solid_angle > 1e-6
    assert big.sum() == 14
    np.testing.assert_allclose(faces.solid_angle[big].sum(), FOUR_PI, rtol=1e-10)
    graph = voronoi_graph(from_ase(ase.build.bulk("Fe", "bcc", a=2.87)))
    assert graph.num_edges == 14  # squares pass w_t=0.4 and ratio 0.2
    strict = voronoi_graph(
        from_ase(ase.build.bulk("Fe", "bcc", a=2.87)), VoronoiParams(min_solid_angle_ratio=0.9)
    )
    assert strict.num_edges == 8
    np.testing.assert_allclose(strict.distance, 2.87 * np.sqrt(3) / 2, rtol=1e-12)


def test_cells_close_around_every_atom(crystal_file):
    for structure in read_structures(crystal_file):
        faces = voronoi_faces(structure)
        totals = np.bincount(faces.centers, weights=faces.solid_angle)
        # Qhull merges nearly coplanar facets with a ~1e-8 relative tolerance
        np.testing.assert_allclose(totals, FOUR_PI, rtol=1e-7, err_msg=structure.formula)


def test_matches_pymatgen_voronoinn_on_shipped_crystals(crystal_file):
    for structure in read_structures(crystal_file):
        ours, ref = voronoi_graph(structure), pymatgen_voronoi_graph(structure)
        a, b = edge_table(ours), edge_table(ref)
        assert a.keys() == b.keys(), structure.formula
        for key, value in b.items():
            assert a[key] == pytest.approx(value, rel=1e-6), (structure.formula, key)
        np.testing.assert_allclose(ours.distance, ref.distance, rtol=1e-9)
        np.testing.assert_allclose(ours.solid_angle_ratio, ref.solid_angle_ratio, rtol=1e-6)


def test_neighbours_point_to_unit_cell_sites_with_offsets(crystal_file):
    for structure in read_structures(crystal_file):
        graph = voronoi_graph(structure)
        assert graph.neighbors.max() < len(structure)
        np.testing.assert_allclose(
            np.linalg.norm(graph.edge_vectors(), axis=1), graph.distance, rtol=1e-12
        )


def sorted_angles_of_atom0(structure):
    graph = voronoi_graph(structure)
    return np.sort(graph.solid_angle[graph.centers == 0])


@pytest.mark.parametrize(
    "transform",
    [
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        [[1, 3, 0], [0, 1, 0], [0, 0, 1]],  # skewed
        [[1, 7, 2], [0, 1, 5], [0, 0, 1]],  # very skewed, thin
        [[2, 0, 0], [0, 1, 0], [0, 0, 1]],  # supercell
    ],
)
def test_any_cell_shape_gives_the_same_environment(transform):
    # One atom per primitive cell: fcc Cu; cells related by integer transforms.
    atoms = ase.build.bulk("Cu", "fcc", a=3.6)
    reference = sorted_angles_of_atom0(from_ase(atoms))
    cell = np.asarray(transform) @ atoms.cell[:]
    n_cells = round(abs(np.linalg.det(transform)))
    positions = atoms.positions if n_cells == 1 else np.vstack([atoms.positions, atoms.cell[0]])
    other = make_structure([29] * n_cells, positions, cell, True)
    np.testing.assert_allclose(sorted_angles_of_atom0(other), reference, rtol=1e-9)


def test_unwrapped_positions_give_the_same_graph(crystal_file):
    structure = next(iter(read_structures(crystal_file, index="2")))
    shifted = make_structure(
        structure.numbers,
        structure.positions + structure.cell[0] * 3 - structure.cell[2],
        structure.cell,
        True,
    )
    a, b = voronoi_graph(structure), voronoi_graph(shifted)
    np.testing.assert_allclose(a.solid_angle, b.solid_angle, rtol=1e-9)
    assert np.array_equal(a.neighbors, b.neighbors)


def test_molecules_never_get_image_neighbours(molecule_file):
    for molecule in read_structures(molecule_file):
        graph = voronoi_graph(molecule)
        assert not graph.shifts.any()
        assert graph.distance.max() <= 4.0
        assert np.all(graph.degree() >= 1)


def test_large_molecule_has_no_image_edges():
    c60 = from_ase(ase.build.molecule("C60"))
    graph = voronoi_graph(c60)
    assert not graph.shifts.any()
    assert np.all(graph.degree() == 3)  # each carbon: its three bonded neighbours


def test_molecule_graph_is_rotation_translation_permutation_invariant(molecule_file):
    molecule = list(read_structures(molecule_file))[7]
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    perm = rng.permutation(len(molecule))
    moved = make_structure(molecule.numbers[perm], molecule.positions[perm] @ q.T + [5, -3, 2])
    a, b = voronoi_graph(molecule), voronoi_graph(moved)
    inverse = np.argsort(perm)
    mapped = {
        (int(perm[c]), int(perm[n])): w
        for c, n, w in zip(b.centers, b.neighbors, b.solid_angle, strict=True)
    }
    original = {
        (int(c), int(n)): w for c, n, w in zip(a.centers, a.neighbors, a.solid_angle, strict=True)
    }
    assert mapped.keys() == original.keys()
    for key, value in original.items():
        assert mapped[key] == pytest.approx(value, rel=1e-4)  # ghost shell orientation
    assert inverse.size == len(molecule)


def open_faces(structure):
    faces = voronoi_faces(structure)
    return {
        (int(c), int(n)): float(w)
        for c, n, w in zip(faces.centers, faces.neighbors, faces.solid_angle, strict=True)
    }


def test_molecule_faces_equal_pymatgen_with_the_same_boundary(molecule_file):
    params = VoronoiParams()
    for molecule in list(read_structures(molecule_file))[:6]:
        centre = molecule.positions.mean(axis=0)
        extent = np.linalg.norm(molecule.positions - centre, axis=1).max()
        radius = extent + params.open_boundary_radius
        ghosts = centre + radius * _GHOST_DIRECTIONS
        ref = pymatgen_molecule_faces(molecule, 4 * radius + 10, ghosts)
        ours = open_faces(molecule)
        big = {k for k, v in ref.items() if v > 1e-3}
        assert big <= ours.keys()
        for key in big:
            assert ours[key] == pytest.approx(ref[key], rel=1e-6), (molecule.formula, key)


def filtered(faces, max_distance=4.0, positions=None):
    best: dict[int, float] = {}
    for (i, _), w in faces.items():
        best[i] = max(best.get(i, 0.0), w)
    return {
        k
        for k, w in faces.items()
        if w >= 0.4
        and w / best[k[0]] >= 0.2
        and np.linalg.norm(positions[k[0]] - positions[k[1]]) <= max_distance
    }


def test_molecule_graph_equals_large_vacuum_box_without_images(molecule_file):
    # The reference's construction with a converged box (20,000 A of vacuum) and the
    # image faces removed: same neighbours, solid angles equal up to the ~1e-3 sr
    # truncation of faces that reach to infinity.
    for molecule in list(read_structures(molecule_file))[:8]:
        extent = np.ptp(molecule.positions, axis=0).max()
        box = pymatgen_molecule_faces(molecule, extent + 2.0e4)
        ours = open_faces(molecule)
        graph = voronoi_graph(molecule)
        ours_edges = {(int(c), int(n)) for c, n in zip(graph.centers, graph.neighbors, strict=True)}
        assert filtered(box, positions=molecule.positions) == ours_edges, molecule.formula
        for key in ours_edges:
            assert ours[key] == pytest.approx(box[key], abs=2e-3)


def test_isolated_atom_is_an_error():
    atoms = ase.build.molecule("CH4")
    atoms += ase.Atom("He", (20.0, 0.0, 0.0))
    with pytest.raises(StructureError, match="isolated atom 5"):
        voronoi_graph(from_ase(atoms))
    graph = voronoi_graph(from_ase(atoms), VoronoiParams(allow_isolated=True))
    assert graph.degree()[5] == 0


def test_single_atom_molecule_is_isolated():
    with pytest.raises(StructureError, match="isolated atom 0"):
        voronoi_graph(make_structure([18], [[0, 0, 0]], source="argon.xyz", frame=0))


def test_planar_and_linear_molecules_work():
    for name in ("C6H6", "CO2", "H2"):
        graph = voronoi_graph(from_ase(ase.build.molecule(name)))
        assert np.all(graph.degree() >= 1), name
    h2 = voronoi_graph(from_ase(ase.build.molecule("H2")))
    np.testing.assert_allclose(h2.solid_angle, 2 * np.pi, rtol=1e-3)  # a half-space


def test_layer_in_a_tall_cell_grows_the_padding():
    # A graphene layer with 15 A between layers: the first padding sees one flat plane.
    layer = ase.build.graphene(a=2.46, vacuum=7.5)
    layer.pbc = True
    graph = voronoi_graph(from_ase(layer))
    assert np.all(graph.degree() == 3)
    assert not graph.shifts[:, 2].any()
    np.testing.assert_allclose(graph.distance, 2.46 / np.sqrt(3), rtol=1e-9)
