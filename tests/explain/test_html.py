import dataclasses
import json
import re

import numpy as np
import pytest

from atomlens.explain.attention import explain
from atomlens.explain.html import render_page, script_safe_json, structure_payload
from atomlens.structures import read_structures

HOSTILE = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">&amp;'


def test_script_safe_json_cannot_close_the_script_element():
    text = script_safe_json({"name": HOSTILE})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"name": HOSTILE}
    with pytest.raises(ValueError):
        script_safe_json({"value": float("nan")})


@pytest.fixture(scope="module")
def crystals(crystal_predictor):
    structures = list(read_structures("tests/data/mp_crystals_sample.extxyz"))
    return explain(crystal_predictor, structures)


def test_crystal_payload_wraps_atoms_and_lists_images(crystals):
    for item in crystals:
        payload = structure_payload(item)
        cell = np.array(payload["cell"])
        frac = np.linalg.solve(cell.T, np.array(payload["positions"]).T).T
        assert np.all(frac > -1e-3) and np.all(frac < 1 + 1e-3)
        # Every bond joins two atoms closer than 1.2 x their covalent radii, across images.
        for i, j, *shift in payload["bonds"]:
            end = np.array(payload["positions"][j]) + np.array(shift) @ cell
            length = np.linalg.norm(end - payload["positions"][i])
            assert 0.5 < length < 1.2 * (payload["radii"][i] + payload["radii"][j]) + 1e-3
        for atom, *shift in payload["images"]:
            moved = frac[atom] + np.array(shift)
            assert np.all(moved >= -0.15 - 1e-9) and np.all(moved <= 1.15 + 1e-9)
            assert any(shift)


def test_a_site_at_the_cell_corner_has_seven_corner_images(crystals):
    # Any atom at fractional (0, 0, 0) is repeated at the 7 other corners of the cell.
    item = next(e for e in crystals if len(e.structure) == 1)
    payload = structure_payload(item)
    frac = np.linalg.solve(np.array(payload["cell"]).T, np.array(payload["positions"][0]))
    np.testing.assert_allclose(frac, 0, atol=1e-6)  # mp-1 (Cs) sits at the origin
    corners = {tuple(s) for a, *s in payload["images"] if all(v in (0, 1) for v in s)}
    assert len(corners) == 7


def test_molecule_payload_and_hostile_names_are_escaped(molecule_predictor):
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))[:3]
    items = explain(molecule_predictor, structures)
    payload = structure_payload(items[0])
    assert payload["cell"] is None and payload["images"] == []
    assert payload["formula"] == "CH4" and len(payload["bonds"]) == 4  # four C-H bonds
    hostile = [dataclasses.replace(items[1], name=HOSTILE)]
    page = render_page(hostile, title=HOSTILE, model="<b>run</b>")
    assert HOSTILE not in page and "window.pwned" in page  # present, but only escaped
    assert "<title>&lt;/script&gt;" in page and "&lt;b&gt;run&lt;/b&gt;" in page
    assert len(re.findall(r"<script", page)) == 2  # the data block and the viewer, no more
    data = page.split('<script id="atomlens-data" type="application/json">')[1]
    data = data.split("</script>")[0]
    assert json.loads(data)["structures"][0]["name"] == HOSTILE
    with pytest.raises(ValueError, match="no structures"):
        render_page([], title="t", model="m")


def test_explanation_renders_in_jupyter_offline(molecule_predictor):
    import html as html_lib

    structures = list(read_structures("tests/data/qm9_sample.extxyz"))[:2]
    item = dataclasses.replace(explain(molecule_predictor, structures)[1], name=HOSTILE)
    markup = item._repr_html_()
    assert markup.startswith('<iframe sandbox="allow-scripts"') and markup.endswith("</iframe>")
    assert markup.count("<") == 2 and HOSTILE not in markup  # one iframe; the page is escaped
    page = html_lib.unescape(markup.split('srcdoc="', 1)[1].rsplit('"></iframe>', 1)[0])
    assert page == render_page([item], title=HOSTILE, model=f"{item.target} ({item.unit})")
    data = page.split('<script id="atomlens-data" type="application/json">')[1]
    shown = json.loads(data.split("</script>")[0])["structures"]
    assert shown == [json.loads(json.dumps(structure_payload(item)))]
    assert shown[0]["symbols"] == item.symbols and shown[0]["name"] == HOSTILE
    np.testing.assert_allclose(shown[0]["attention"], item.attention, atol=1e-6)
    # nothing is fetched: no URL, no external script, style sheet or image
    assert not re.search(r"(?:https?:|ftp:)?//[\w.-]+\.[a-z]{2,}", page)
    assert not re.search(r"<(?:script|img|link|iframe)[^>]*\bsrc(?:set)?=", page, re.I)
    assert "@import" not in page and "url(" not in page
