import numpy as np
import pytest

from atomlens.datasets.qm9 import (
    HARTREE_TO_EV,
    QM9_TARGETS,
    load_qm9,
    parse_coordinates,
    parse_elements,
)
from atomlens.errors import StructureError


def test_coordinates_that_are_not_strict_json():
    text = "[[0.,1.5,-2.],[1.2*^-3,.5,1.e2]]"
    np.testing.assert_allclose(
        parse_coordinates(text, 2, "m"), [[0.0, 1.5, -2.0], [1.2e-3, 0.5, 100.0]]
    )


def test_coordinate_count_mismatch_names_the_molecule():
    with pytest.raises(StructureError, match=r"qm9 molecule 7.*expected 6 coordinates"):
        parse_coordinates("[[0,0,0]]", 2, "qm9 molecule 7")


def test_elements_parse_and_reject_unknown():
    assert parse_elements("['C','H','H']", "m").tolist() == [6, 1, 1]
    with pytest.raises(StructureError, match="unknown element"):
        parse_elements("['C','Xx']", "m")


def test_first_molecules_units_and_targets():
    table = load_qm9(limit=5)
    assert table.targets.shape == (5, 12)
    assert len(QM9_TARGETS) == 12
    assert table.structures[0].formula == "CH4" and table.ids[0] == 1
    homo = table.target_names.index("homo")
    # QM9 molecule 1 (methane): HOMO -0.3877 Ha, Cv 6.469 cal/(mol K), alpha 13.21 Bohr^3
    assert table.targets[0, homo] == pytest.approx(-0.3877 * HARTREE_TO_EV)
    assert table.targets[0, table.target_names.index("cv")] == pytest.approx(6.469)
    assert table.targets[0, table.target_names.index("alpha")] == pytest.approx(13.21)
    gap = table.targets[:, table.target_names.index("gap")]
    lumo = table.targets[:, table.target_names.index("lumo")]
    # QM9 gives 4 decimals in Hartree, so the identity holds to about 1e-4 Ha
    np.testing.assert_allclose(gap, lumo - table.targets[:, homo], atol=1.5e-4 * HARTREE_TO_EV)


@pytest.mark.slow
def test_all_of_qm9_parses_with_finite_targets():
    table = load_qm9()
    assert len(table.structures) == 130_831
    assert np.isfinite(table.targets).all()
    assert len(set(table.ids.tolist())) == 130_831
    sizes = np.array([len(s) for s in table.structures])
    assert sizes.min() >= 3 and sizes.max() == 29
