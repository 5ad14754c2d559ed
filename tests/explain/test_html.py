import dataclasses
import json
import re

import numpy as np
import pytest

from atomlens.explain import display
from atomlens.explain.attention import explain
from atomlens.explain.html import page_data, render_page, script_safe_json, structure_payload
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


def test_crystal_payload_wraps_atoms_and_lists_bonds(crystals):
    for item in crystals:
        payload = structure_payload(item)
        cell = np.array(payload["cell"])
        frac = np.linalg.solve(cell.T, np.array(payload["positions"]).T).T
        assert np.all(frac > -1e-3) and np.all(frac < 1 + 1e-3)
        np.testing.assert_allclose(frac, payload["fractional"], atol=1e-4)
        assert payload["pbc"] == [True, True, True] and payload["depiction"] is None
        # Every bond joins two atoms closer than 1.2 x their covalent radii, across images.
        for i, j, *shift in payload["bonds"]:
            end = np.array(payload["positions"][j]) + np.array(shift) @ cell
            length = np.linalg.norm(end - payload["positions"][i])
            assert 0.5 < length < 1.2 * (payload["radii"][i] + payload["radii"][j]) + 1e-3


def test_molecule_payload_and_hostile_names_are_escaped(molecule_predictor):
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))[:3]
    items = explain(molecule_predictor, structures)
    payload = structure_payload(items[0])
    assert payload["cell"] is None and payload["fractional"] is None
    assert payload["elements"]["H"] == [255, 255, 255]  # Jmol colours
    assert payload["elements"]["C"] == [144, 144, 144]
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
    assert shown == [json.loads(json.dumps(page_data([item])["structures"][0]))]
    assert shown[0]["symbols"] == item.symbols and shown[0]["name"] == HOSTILE
    np.testing.assert_allclose(shown[0]["attention"], item.attention, atol=1e-6)
    # nothing is fetched: no URL, no external script, style sheet or image
    # (the depiction's SVG names its XML namespace, an identifier that is not fetched)
    page = page.replace("xmlns='http://www.w3.org/2000/svg'", "")
    assert not re.search(r"(?:https?:|ftp:)?//[\w.-]+\.[a-z]{2,}", page)
    assert not re.search(r"<(?:script|img|link|iframe)[^>]*\bsrc(?:set)?=", page, re.I)
    assert "@import" not in page and "url(" not in page


def test_colour_scale_is_shared_and_centred_at_uniform(molecule_predictor):
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))[:4]
    items = explain(molecule_predictor, structures)
    n = len(items[1].structure)
    uniform = dataclasses.replace(items[1], attention=np.full(n, 1 / n))
    peaked = np.full(len(items[2].structure), 0.1)
    peaked[0] = 1 - 0.1 * (len(peaked) - 1)
    items = [items[0], uniform, dataclasses.replace(items[2], attention=peaked), items[3]]
    data = page_data(items, depictions=[None] * 4)
    scale = data["scales"]["attention"]
    assert scale["centre"] == 1 and scale["relative"]
    # one range for the page: at least 1 +- MIN_HALF_RANGE, reaching the peaked structure
    relative = np.concatenate([e.attention * len(e.attention) for e in items])
    distance = np.abs(relative - 1)
    assert scale["half"] == pytest.approx(np.quantile(distance, 0.99), rel=1e-3)
    assert scale["half"] >= display.MIN_HALF_RANGE and scale["clipped"]
    sized = display.shared_scale([np.array([0.99, 1.01])], relative=True, label="x")
    assert sized.half == display.MIN_HALF_RANGE and not sized.clipped
    assert display.diverging_colour(0) == display.NEUTRAL == (247, 247, 247)
    assert display.diverging_colour(-1) == (33, 102, 172)
    assert display.diverging_colour(5) == (178, 24, 43)  # clipped to the high end
    np.testing.assert_array_equal(
        display.ColourScale("x", 1.0, 0.2, True, False).colours([1.0, 1.0]), [[247] * 3] * 2
    )
    # a signed method is centred at 0, in the target's unit
    scores = np.array([-2, 0, 1, 1, 0.5])
    signed = dataclasses.replace(items[0], method="occlusion", scores=scores, unit="eV")
    scales = display.page_scales([signed])
    assert scales["occlusion"].centre == 0 and not scales["occlusion"].relative
    assert scales["occlusion"].label == "occlusion (eV)"


def test_reference_and_error_come_from_the_labels(molecule_predictor):
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))[:2]
    items = explain(molecule_predictor, structures)
    data = page_data(items, depictions=[None, None])
    for item, shown in zip(items, data["structures"], strict=True):
        label = item.structure.info["homo"]  # the extxyz comment's homo=...
        assert shown["reference"] == pytest.approx(label)
        assert shown["error"] == pytest.approx(item.value - label)
    given = page_data(items, references=[None, -1.0], depictions=[None, None])["structures"]
    assert given[0]["reference"] is None and given[0]["error"] is None
    assert given[1]["error"] == pytest.approx(items[1].value + 1.0)
    with pytest.raises(ValueError, match="1 references for 2"):
        display.reference_values(items, [1.0])
