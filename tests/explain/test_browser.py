"""The viewer page in headless Chromium (Debian chromium; `make test` installs it)."""

import dataclasses
import shutil

import numpy as np
import pytest

from atomlens.explain.attention import explain
from atomlens.explain.html import write_page
from atomlens.structures import read_structures

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (make test installs Debian's chromium)"
)
HOSTILE = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield instance
        instance.close()


def open_page(browser, path):
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_function("window.atomlensViewer !== undefined")
    return page, errors


def pixels(png: bytes) -> np.ndarray:
    import io

    from matplotlib.image import imread

    return imread(io.BytesIO(png), format="png")


def test_molecules_render_with_search_and_hover(browser, molecule_predictor, tmp_path):
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))
    items = explain(molecule_predictor, structures)
    page, errors = open_page(browser, write_page(items, tmp_path / "m.html", title="t", model="m"))
    viewer = "window.atomlensViewer"
    assert page.evaluate(f"{viewer}.count") == 12
    for index in (0, 5, 11):
        page.evaluate(f"{viewer}.select({index})")
        assert page.evaluate(f"{viewer}.drawnAtoms") == len(structures[index])
        assert page.locator("#atoms-body tr").count() == len(structures[index])
        assert page.text_content("#title") == items[index].name
    expected = sum("C5H" in s.formula for s in structures)  # case-insensitive substring
    assert expected == 4 and page.evaluate(f"{viewer}.filter('c5h')") == expected
    assert page.locator("#index li:not([hidden])").count() == expected
    page.fill("#search", "qm9_id=50")  # typing into the search box filters by id
    assert page.locator("#index li:not([hidden])").count() == 1
    # Hovering the most attended atom of methane shows its element and attention.
    page.evaluate(f"{viewer}.select(0)")
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # C at centre
    assert page.is_visible("#tooltip") and page.text_content("#tooltip").startswith("C 0")
    drawn = pixels(page.locator("#view").screenshot())
    page.evaluate(f"{viewer}.select(-1)")  # ignored: the view stays
    blank = browser.new_page(viewport={"width": 1100, "height": 700})
    blank.set_content("<canvas style='width:600px;height:600px;background:#fff'></canvas>")
    empty = pixels(blank.locator("canvas").screenshot())
    assert np.abs(drawn[..., :3] - 1.0).max() > 0.5  # coloured atoms, not a white canvas
    assert np.abs(empty[..., :3] - 1.0).max() == 0
    assert errors == []


def test_colour_by_local_attention_layers(browser, molecule_predictor, tmp_path):
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))[:3]
    items = explain(molecule_predictor, structures, local=True)
    page, errors = open_page(browser, write_page(items, tmp_path / "l.html", title="t", model="m"))
    assert page.locator("#colour-by option").count() == 3  # global + 2 layers
    page.evaluate("window.atomlensViewer.colourBy(2)")
    assert page.text_content("#bar-label") == "local attention, layer 2"
    low = float(page.text_content("#bar-low"))
    assert low == pytest.approx(items[0].local_attention[1].min(), rel=1e-3)
    assert page.evaluate("window.atomlensViewer.drawnAtoms") == 5
    page.evaluate("window.atomlensViewer.colourBy(0)")
    assert page.text_content("#bar-label") == "attention"
    assert errors == []


def test_crystal_draws_cell_atoms_and_images(browser, crystal_predictor, tmp_path):
    structures = list(read_structures("tests/data/mp_crystals_sample.extxyz"))
    items = explain(crystal_predictor, structures)
    page, errors = open_page(browser, write_page(items, tmp_path / "c.html", title="t", model="m"))
    page.evaluate("window.atomlensViewer.select(0)")  # mp-1: one Cs atom at the origin
    assert page.evaluate("window.atomlensViewer.drawnAtoms") == 1
    assert page.evaluate("window.atomlensViewer.drawnImages") == 7  # the other 7 corners
    page.uncheck("#images-toggle")
    assert page.evaluate("window.atomlensViewer.drawnImages") == 0
    assert page.evaluate("window.atomlensViewer.drawnAtoms") == 1
    largest = int(np.argmax([len(s) for s in structures]))
    page.evaluate(f"window.atomlensViewer.select({largest})")
    assert page.evaluate("window.atomlensViewer.drawnAtoms") == len(structures[largest])
    assert errors == []


def test_hostile_names_stay_text(browser, molecule_predictor, tmp_path):
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))[:2]
    items = [dataclasses.replace(e, name=HOSTILE) for e in explain(molecule_predictor, structures)]
    page, errors = open_page(
        browser, write_page(items, tmp_path / "h.html", title=HOSTILE, model=HOSTILE)
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.pwned === undefined")
    assert page.locator("img").count() == 0
    assert page.text_content("#title") == HOSTILE
    assert page.title() == HOSTILE
    assert page.text_content("#index li .name") == HOSTILE
    assert errors == []
