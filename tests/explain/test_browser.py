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
    items = explain(molecule_predictor, structures, local=True, method="attention")
    page, errors = open_page(browser, write_page(items, tmp_path / "l.html", title="t", model="m"))
    assert page.locator("#colour-by option").count() == 3  # global + 2 layers
    page.evaluate("window.atomlensViewer.colourBy('local-2')")
    assert page.text_content("#bar-label") == "local attention, layer 2"
    # the local layers share one scale centred at 1 (received attention averages 1)
    local = np.concatenate([e.local_attention.ravel() for e in items])
    half = np.quantile(np.abs(local - 1), 0.99)
    low = float(page.text_content("#bar-low").lstrip("≤"))
    assert low == pytest.approx(1 - max(half, 0.05), rel=1e-3)
    here = page.text_content("#bar-range")
    assert f"{items[0].local_attention[1].min():.4g}"[:4] in here
    assert page.evaluate("window.atomlensViewer.drawnAtoms") == 5
    page.evaluate("window.atomlensViewer.colourBy('attention')")
    assert page.text_content("#bar-label") == "attention × N (1 = uniform)"
    assert errors == []


def kinds(page) -> dict[str, int]:
    sites = page.evaluate("window.atomlensViewer.geometry.sites")
    return {kind: sum(s["kind"] == kind for s in sites) for kind in ("cell", "image", "bonded")}


def dangling(page) -> int:
    """Bond end points of the last frame that sit on no drawn atom."""
    geometry = page.evaluate("window.atomlensViewer.geometry")
    sites = np.array([s["pos"] for s in geometry["sites"]])
    ends = np.array(geometry["bonds"]).reshape(-1, 3)
    if not len(ends):
        return 0
    distance = np.linalg.norm(ends[:, None, :] - sites[None, :, :], axis=2).min(axis=1)
    return int(np.sum(distance > 1e-6))


@pytest.fixture(scope="module")
def crystal_page(browser, crystal_predictor, tmp_path_factory):
    structures = list(read_structures("tests/data/mp_crystals_sample.extxyz"))
    items = explain(crystal_predictor, structures)
    path = write_page(items, tmp_path_factory.mktemp("c") / "c.html", title="t", model="m")
    page, errors = open_page(browser, path)
    yield page, structures
    assert errors == []


def test_crystal_draws_cell_atoms_images_and_repeats(crystal_page):
    page, structures = crystal_page
    viewer = "window.atomlensViewer"
    page.evaluate(f"{viewer}.select(0)")  # mp-1: one Cs atom at the origin
    assert page.evaluate(f"{viewer}.drawnAtoms") == 1
    assert kinds(page)["image"] == 7  # the other 7 corners of the cell
    page.fill("#repeat-a", "2")
    page.fill("#repeat-b", "2")
    page.fill("#repeat-c", "2")
    page.dispatch_event("#repeat-c", "change")
    assert page.evaluate(f"{viewer}.drawnAtoms") == 8  # 2x2x2 cells
    assert kinds(page)["image"] == 27 - 8  # the other lattice points of the 2x2x2 block
    page.uncheck("#images-toggle")
    assert page.evaluate(f"{viewer}.drawnImages") == 0
    assert page.evaluate(f"{viewer}.drawnAtoms") == 8
    page.check("#images-toggle")
    largest = int(np.argmax([len(s) for s in structures]))
    page.evaluate(f"{viewer}.select({largest})")
    assert page.evaluate(f"{viewer}.drawnAtoms") == 8 * len(structures[largest])
    page.evaluate(f"{viewer}.repeat(3, 1, 1)")
    assert page.evaluate(f"{viewer}.drawnAtoms") == 3 * len(structures[largest])
    assert page.input_value("#repeat-a") == "3" and page.input_value("#repeat-b") == "1"
    page.evaluate(f"{viewer}.repeat(1, 1, 1)")
    assert page.evaluate(f"{viewer}.drawnAtoms") == len(structures[largest])


def test_crystal_bonds_never_end_without_an_atom(crystal_page):
    page, structures = crystal_page
    viewer = "window.atomlensViewer"
    bonds = {True: 0, False: 0}
    bonded_images = 0
    for index in range(len(structures)):
        page.evaluate(f"{viewer}.select({index})")
        for images in (True, False):
            page.set_checked("#images-toggle", images)
            for repeat in ((1, 1, 1), (2, 2, 1)):
                page.evaluate(f"{viewer}.repeat({', '.join(map(str, repeat))})")
                assert dangling(page) == 0, (index, images, repeat)
                bonds[images] += len(page.evaluate(f"{viewer}.geometry.bonds"))
                bonded_images += kinds(page)["bonded"] if images else 0
        page.evaluate(f"{viewer}.repeat(1, 1, 1)")
        page.check("#images-toggle")
    # With images on, bonds that leave the cell lead to faded image atoms; with images off
    # they are left out (clipped at the cell), so fewer bonds are drawn.
    assert bonded_images > 0 and bonds[True] > bonds[False] > 0


def test_hostile_names_stay_text(browser, molecule_predictor, tmp_path):
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))[:2]
    items = [dataclasses.replace(e, name=HOSTILE) for e in explain(molecule_predictor, structures)]
    page, errors = open_page(
        browser, write_page(items, tmp_path / "h.html", title=HOSTILE, model=HOSTILE)
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.pwned === undefined")
    assert page.locator("img:not(#depiction-image)").count() == 0
    assert page.get_attribute("#depiction-image", "src").startswith("data:image/svg+xml")
    assert page.text_content("#title") == HOSTILE
    assert page.title() == HOSTILE
    assert page.text_content("#index li .name") == HOSTILE
    assert errors == []


NEUTRAL = [247, 247, 247]  # the middle of the diverging scale (display.NEUTRAL)


@pytest.fixture(scope="module")
def molecules(molecule_predictor):
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))
    return explain(molecule_predictor, structures, method="attention")  # the viewer's own colour


def test_uniform_attention_is_neutral_with_a_note(browser, molecules, tmp_path):
    methane = molecules[0]  # CH4
    uniform = dataclasses.replace(methane, name="uniform", attention=np.full(5, 0.2))
    peaked = dataclasses.replace(
        methane, name="peaked", attention=np.array([0.6, 0.1, 0.1, 0.1, 0.1])
    )
    page, errors = open_page(
        browser, write_page([uniform, peaked], tmp_path / "u.html", title="t", model="m")
    )
    viewer = "window.atomlensViewer"
    assert page.evaluate(f"{viewer}.geometry.halos") == [NEUTRAL] * 5
    assert page.is_visible("#spread-note") and "Nearly uniform" in page.text_content("#spread-note")
    # the colour bar is centred at 1 and spans the page's shared range (peaked: 3 and 0.5)
    assert page.text_content("#bar-centre").startswith("centre 1 = uniform")
    low, high = (float(page.text_content(k).lstrip("≤≥")) for k in ("#bar-low", "#bar-high"))
    assert low + high == pytest.approx(2, abs=1e-3) and high > 2.5
    bar = pixels(page.locator("#colourbar").screenshot())
    middle = np.round(255 * bar[bar.shape[0] // 2, bar.shape[1] // 2, :3])
    np.testing.assert_allclose(middle, NEUTRAL, atol=4)
    page.evaluate(f"{viewer}.select(1)")
    assert not page.is_visible("#spread-note")
    halos = page.evaluate(f"{viewer}.geometry.halos")
    assert halos[0][0] > 170 and halos[0][2] < 80  # carbon, 3 x uniform: red
    assert all(h[2] > h[0] for h in halos[1:])  # the hydrogens, 0.5 x uniform: blue
    assert errors == []


def test_png_export_keyboard_index_and_sort_by_error(browser, molecules, tmp_path):
    items = molecules[:5]
    page, errors = open_page(browser, write_page(items, tmp_path / "k.html", title="t", model="m"))
    viewer = "window.atomlensViewer"
    with page.expect_download() as download:
        page.click("#save-png")
    assert download.value.suggested_filename == "qm9_id_1.png"
    png = download.value.path().read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and np.abs(pixels(png)[..., :3] - 1).max() > 0.5
    # keyboard: Tab from the search box reaches the list, arrows move, Enter opens
    page.focus("#search")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # past the order menu
    focused = page.evaluate("document.activeElement.dataset.index")
    assert focused == "0" and page.evaluate("document.activeElement.getAttribute('role')") == (
        "option"
    )
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert page.evaluate(f"{viewer}.selected") == 0  # moving focus does not open
    page.keyboard.press("Enter")
    assert page.evaluate(f"{viewer}.selected") == 2
    assert page.text_content("#title") == items[2].name
    assert page.get_attribute("#index li[data-index='2']", "aria-selected") == "true"
    page.keyboard.press("End")
    page.keyboard.press(" ")
    assert page.evaluate(f"{viewer}.selected") == 4
    # reference and error per structure (homo= in the extxyz comment), sortable by |error|
    errors_ = [e.value - e.structure.info["homo"] for e in items]
    assert "error" in page.text_content("#reference")
    order = page.evaluate(f"{viewer}.sort('error')")
    assert order == sorted(range(5), key=lambda k: -abs(errors_[k]))
    shown = [
        int(i) for i in page.eval_on_selector_all("#index li", "l => l.map(e => e.dataset.index)")
    ]
    assert shown == order
    assert errors == []


def test_method_scores_colour_the_view(browser, molecules, tmp_path):
    water = molecules[1]  # H2O
    scores = np.array([-0.3, 0.0, 0.6])
    item = dataclasses.replace(water, method="occlusion", scores=scores, unit="eV")
    page, errors = open_page(browser, write_page([item], tmp_path / "o.html", title="t", model="m"))
    assert page.text_content("#bar-label") == "occlusion (eV)"
    assert page.text_content("#score-head") == "occlusion (eV)"
    assert page.text_content("#bar-centre").startswith("centre 0 ")
    assert page.locator("#colour-by option").count() == 2  # occlusion, attention
    halos = page.evaluate("window.atomlensViewer.geometry.halos")
    assert halos[1] == NEUTRAL and halos[2][0] > halos[2][2] and halos[0][2] > halos[0][0]
    first = page.locator("#atoms-body tr").first.locator("td")
    assert first.nth(1).text_content() == "2"  # ranked by the occlusion score
    page.evaluate("window.atomlensViewer.colourBy('attention')")
    assert page.text_content("#bar-label") == "attention × N (1 = uniform)"
    assert errors == []


def test_depiction_beside_the_view_and_its_fallback(
    browser, molecules, molecule_predictor, crystal_predictor, tmp_path
):
    pytest.importorskip("rdkit")
    from atomlens.structures.record import make_structure

    methyl = make_structure(  # a radical: no bond orders with charge 0
        [6, 1, 1, 1],
        [[0, 0, 0], [1.08, 0, 0], [-0.54, 0.935, 0], [-0.54, -0.935, 0]],
        info={"name": "methyl"},
    )
    (radical,) = explain(molecule_predictor, [methyl])
    crystals = list(read_structures("tests/data/mp_crystals_sample.extxyz"))[:1]
    crystal = explain(crystal_predictor, crystals)
    items = [molecules[6], radical, *crystal]
    page, errors = open_page(browser, write_page(items, tmp_path / "d.html", title="t", model="m"))
    assert page.is_visible("#depiction-image")
    assert page.get_attribute("#depiction-image", "alt").startswith(
        f"2-D depiction of {items[0].name}"
    )
    page.wait_for_function("document.getElementById('depiction-image').naturalWidth > 0")
    page.evaluate("window.atomlensViewer.select(1)")
    assert not page.is_visible("#depiction-image")
    assert "bonds could not be perceived" in page.text_content("#depiction-note")
    assert page.evaluate("window.atomlensViewer.drawnAtoms") == 4  # the 3-D view stays
    page.evaluate("window.atomlensViewer.select(2)")
    assert not page.is_visible("#depiction")  # crystals have no 2-D depiction
    assert errors == []


def test_dollar_less_than_and_equals_names_stay_literal(browser, molecules, tmp_path):
    tricky = '=$x^2$ <b>&"name"'
    items = [dataclasses.replace(molecules[1], name=tricky)]
    page, errors = open_page(
        browser, write_page(items, tmp_path / "n.html", title=tricky, model="m")
    )
    assert page.text_content("#title") == tricky and page.title() == tricky
    assert page.text_content("#index li .name") == tricky
    assert page.locator("b").count() == 0
    if page.is_visible("#depiction-image"):  # with RDKit
        assert page.get_attribute("#depiction-image", "alt").startswith(
            f"2-D depiction of {tricky}"
        )
    with page.expect_download() as download:
        page.click("#save-png")
    assert download.value.suggested_filename == "x_2_b_name.png"
    assert errors == []
