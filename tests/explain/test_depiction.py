"""2-D depictions of molecules (RDKit) and the outputs that carry the method's scores."""

import csv
import dataclasses
import json
import xml.etree.ElementTree as ET

import ase.build
import numpy as np
import pytest

from atomlens.explain import depiction, display
from atomlens.explain.attention import explain
from atomlens.explain.html import make_depictions
from atomlens.explain.report import write_report
from atomlens.structures import read_structures
from atomlens.structures.io import as_structure
from atomlens.structures.record import make_structure

SVG = "{http://www.w3.org/2000/svg}"
TRICKY = '=$x^2$ <b>&"name"'  # mathtext, markup, a spreadsheet formula


def ethanol(predictor, name="ethanol"):
    molecule = ase.build.molecule("CH3CH2OH")  # O 0, C 1, C 2, H 3-8
    molecule.info["name"] = name
    (item,) = explain(predictor, [as_structure(molecule)], method="attention")
    attention = np.array([0.30, 0.20, 0.10, 0.04, 0.04, 0.02, 0.20, 0.05, 0.05])
    return dataclasses.replace(item, attention=attention / attention.sum())


def fills(svg: str) -> dict[int, tuple[int, int, int]]:
    """Highlight colour of each highlighted atom (RDKit draws an ellipse per atom)."""
    out = {}
    for node in ET.fromstring(svg).iter(f"{SVG}ellipse"):
        atom = int(node.get("class").split("-")[1])
        fill = node.get("style").split("fill:#")[1][:6]
        out[atom] = tuple(int(fill[k : k + 2], 16) for k in (0, 2, 4))
    return out


def test_ethanol_highlights_follow_the_scores(molecule_predictor):
    pytest.importorskip("rdkit")
    item = ethanol(molecule_predictor)
    scale = display.page_scales([item])["attention"]
    picture = depiction.depict(item, scale)
    assert picture.note is None and picture.svg.startswith("<?xml")
    position = scale.position(item.attention * 9)
    expected = {i for i in range(9) if abs(position[i]) >= depiction.HIGHLIGHT_MIN}
    assert set(picture.highlighted) == expected and {0, 1, 6} <= expected
    drawn = fills(picture.svg)
    assert set(drawn) == expected
    for atom, colour in picture.highlighted.items():
        assert np.abs(np.subtract(drawn[atom], colour)).max() <= 1  # the scale's colour
    top = int(np.argmax(item.attention))  # the O: the reddest highlight
    assert top == 0 and drawn[0] == max(drawn.values(), key=lambda c: c[0] - c[2])
    assert drawn[5][2] > drawn[5][0]  # the least attended H: blue
    # atoms keep their input numbers: 3 C/O heavy atoms labelled by index among the text
    texts = [t.text for t in ET.fromstring(picture.svg).iter(f"{SVG}text")]
    assert {"O", "H"} <= set(texts) and {"0", "5", "8"} <= set(texts)


def test_unperceivable_molecule_falls_back_with_a_note(molecule_predictor):
    pytest.importorskip("rdkit")
    methyl = make_structure(  # CH3 radical: no bond orders add up with charge 0
        [6, 1, 1, 1], [[0, 0, 0], [1.08, 0, 0], [-0.54, 0.935, 0], [-0.54, -0.935, 0]]
    )
    (item,) = explain(molecule_predictor, [methyl])
    picture = depiction.depict(item, display.page_scales([item])["attention"])
    assert picture.svg is None and picture.note == depiction.NO_BONDS


def test_names_are_escaped_in_the_svg(molecule_predictor):
    pytest.importorskip("rdkit")
    item = ethanol(molecule_predictor, name=TRICKY)
    picture = depiction.depict(item, display.page_scales([item])["attention"])
    assert TRICKY not in picture.svg and "&lt;b&gt;" in picture.svg
    title = ET.fromstring(picture.svg).find(f"{SVG}title").text
    assert item.name.endswith(TRICKY)
    assert title == f"{item.name}: atoms highlighted by attention × N (1 = uniform)"


def test_crystals_have_no_depiction(crystal_predictor):
    structures = list(read_structures("tests/data/mp_crystals_sample.extxyz"))[:2]
    items = explain(crystal_predictor, structures)
    assert make_depictions(items, display.page_scales(items)) == [None, None]
    with pytest.raises(ValueError, match="for molecules"):
        depiction.depict(items[0], display.page_scales(items)["attention"])


def test_without_rdkit_explain_works_and_says_so_once(
    molecule_predictor, monkeypatch, capsys, tmp_path
):
    monkeypatch.setattr(depiction, "have_rdkit", lambda: False)
    monkeypatch.setattr(depiction, "_hinted", False)
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))[:2]
    for out in ("a", "b"):
        write_report(molecule_predictor, structures, tmp_path / out, progress=False)
    assert capsys.readouterr().err.count(depiction.RDKIT_HINT) == 1
    assert not (tmp_path / "a" / "depictions").exists()
    assert depiction.RDKIT_HINT in (tmp_path / "b" / "index.html").read_text()


def test_report_carries_the_method_scores_and_writes_depictions(molecule_predictor, tmp_path):
    pytest.importorskip("rdkit")
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))[4:7]
    out = tmp_path / "out"
    items, written = write_report(
        molecule_predictor, structures, out, progress=False, method="gradient_input"
    )
    files = sorted(p.name for p in (out / "depictions").glob("*.svg"))
    assert files == [f"{k:04d}_qm9_id_{i}.svg" for k, i in enumerate((21, 50, 231))]
    assert {out / "depictions" / name for name in files} <= set(written)
    page = (out / "index.html").read_text()
    data = json.loads(page.split('type="application/json">')[1].split("</script>")[0])
    assert "gradient_input" in data["scales"] and "<title>atomlens: homo gradient_input<" in page
    for item, shown in zip(items, data["structures"], strict=True):
        assert shown["method"] == "gradient_input"
        np.testing.assert_allclose(shown["scores"], item.scores, rtol=1e-4, atol=1e-9)
        assert shown["depiction"]["file"].startswith("depictions/")
        assert shown["depiction"]["svg"] == (out / shown["depiction"]["file"]).read_text()
    with (out / "structures.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for item, row in zip(items, rows, strict=True):
        top = int(np.argmax(np.abs(item.scores)))
        assert row["method"] == "gradient_input" and row["top_atom"] == f"{item.symbols[top]}{top}"
        assert float(row["top_score"]) == pytest.approx(item.scores[top])
        label = item.structure.info["homo"]
        assert float(row["error"]) == pytest.approx(item.value - label)
    # a later report without molecules' depictions removes the stale ones
    write_report(molecule_predictor, structures[:1], out, progress=False)
    assert [p.name for p in (out / "depictions").glob("*.svg")] == ["0000_qm9_id_21.svg"]


def test_figures_show_and_name_the_method(molecule_predictor, tmp_path, monkeypatch):
    from atomlens.explain import figures

    saved = []
    original = figures.save_figure
    monkeypatch.setattr(
        figures, "save_figure", lambda f, p, *a, **k: (saved.append(f), original(f, p, *a, **k))[1]
    )
    water = explain(molecule_predictor, list(read_structures("tests/data/qm9_sample.extxyz"))[1:2])
    item = dataclasses.replace(
        water[0], method="occlusion", scores=np.array([-0.3, 0.0, 0.6]), unit="eV"
    )
    figures.plot_structure(item, tmp_path / "s.png", reference=-8.0)
    axis = saved[-1].axes[0]
    assert axis.get_ylabel() == "occlusion (eV)" and axis.get_title().endswith("[occlusion]")
    assert f"(reference -8, error {item.value + 8:+.3g})" in axis.get_title()
    np.testing.assert_allclose([p.get_height() for p in axis.patches], item.scores)
    figures.plot_by_environment([item], tmp_path / "e.png")
    axis = saved[-1].axes[0]
    assert axis.get_title().startswith("occlusion per environment (element-neighbours")
    assert axis.get_lines()[-1].get_ydata()[0] == 0  # the neutral level of a signed score
