"""Names with ``$``, backslashes or formula characters: literal figure text, safe CSV cells."""

import csv

import ase.build
import ase.io
import pytest

from atomlens.cli import main
from atomlens.explain import figures
from atomlens.explain.attention import explain
from atomlens.structures import make_structure

# File names become structure names (``<file>#<frame>``).
NAMES = {
    "math": "$x^2$ = evil",
    "broken_math": r"$\frac{$ odd",
    "hyperlink": '=HYPERLINK("x","y")',
    "at": "@SUM(1)",
    "minus": "-cmd",
}


@pytest.fixture
def captured_figures(monkeypatch):
    """Every figure the explain figures module saves."""
    saved = []
    original = figures.save_figure

    def keep(figure, path, *args, **kwargs):
        saved.append(figure)
        return original(figure, path, *args, **kwargs)

    monkeypatch.setattr(figures, "save_figure", keep)
    return saved


def _rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_explain_command_with_hostile_names(molecule_run, tmp_path, captured_figures, capsys):
    inputs = []
    for text in NAMES.values():
        path = tmp_path / "in" / f"{text}.xyz"
        path.parent.mkdir(exist_ok=True)
        ase.io.write(path, ase.build.molecule("H2O"), format="xyz")
        inputs.append(str(path))
    out = tmp_path / "out"
    assert main(["explain", str(molecule_run), *inputs, "--out", str(out)]) == 0
    capsys.readouterr()

    titles = [f.axes[0].title for f in captured_figures if f.axes[0].get_title()]
    for text in NAMES.values():
        (title,) = [t for t in titles if t.get_text().startswith(f"{text}.xyz")]
        assert not title.get_parse_math() and not title.get_usetex()

    with (out / "atoms.csv").open(newline="") as handle:
        raw = list(csv.reader(handle))[1:]
    quoted = {row[0] for row in raw if row[0].startswith("'")}
    # "$x^2$ = evil" needs no quote; the formula-like names do.
    assert quoted == {f"'{NAMES[k]}.xyz#0" for k in ("hyperlink", "at", "minus")}
    for row in _rows(out / "atoms.csv"):
        float(row["attention"]), int(row["rank"]), int(row["coordination"])
    for row in _rows(out / "structures.csv"):
        assert not row["prediction"].startswith("'")
        float(row["prediction"])  # a number, negative or not
        if row["structure"].lstrip("'")[:1] in "=@-":
            assert row["structure"].startswith("'")


def test_structure_figure_title_is_the_literal_name(molecule_predictor, tmp_path, captured_figures):
    water = ase.build.molecule("H2O")
    for text in NAMES.values():
        structure = make_structure(
            water.numbers, water.positions, source="test", info={"name": text}
        )
        (item,) = explain(molecule_predictor, [structure])
        # Saving draws the title: mathtext would fail on "$\frac{$" and typeset "$x^2$".
        assert figures.plot_structure(item, tmp_path / "a.png").stat().st_size > 0
        title = captured_figures[-1].axes[0].title
        assert title.get_text().startswith(f"name={text}  H2O")
        assert not title.get_parse_math() and not title.get_usetex()
