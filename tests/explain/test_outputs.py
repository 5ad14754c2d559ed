"""Output naming and all-or-nothing writes of ``predict`` and ``explain`` (issue 15 item 6)."""

import csv
from pathlib import Path

import ase.io
import pytest

from atomlens.cli import main
from atomlens.explain import report
from atomlens.inference import load_model
from atomlens.predict_files import STAGING_PREFIX, output_stems
from atomlens.structures import read_structures

DATA = Path(__file__).parents[1] / "data"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def same_stem_inputs(tmp_path: Path) -> tuple[Path, Path]:
    """``a/mol.xyz`` (2 molecules) and ``b/mol.xyz`` (3 other molecules), without ids."""
    frames = ase.io.read(DATA / "qm9_sample.extxyz", index=":")
    for atoms in frames:
        atoms.info = {}
    for folder, chosen in (("a", frames[:2]), ("b", frames[2:5])):
        (tmp_path / folder).mkdir()
        ase.io.write(tmp_path / folder / "mol.xyz", chosen, format="extxyz")
    return tmp_path / "a" / "mol.xyz", tmp_path / "b" / "mol.xyz"


def overlapping_file(tmp_path: Path) -> Path:
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\n\nC 0 0 0\nH 0.1 0 0\n")
    return bad


def test_output_stems_are_distinct():
    files = [Path("a/mol.xyz"), Path("b/mol.xyz"), Path("c.xyz"), Path("a/mol.xyz")]
    assert output_stems(files) == ["a_mol_1", "b_mol", "c", "a_mol_2"]
    assert output_stems([Path("x/mol.xyz"), Path("x/mol.cif")]) == ["x_mol_1", "x_mol_2"]
    assert output_stems([Path("one.xyz"), Path("two.cif")]) == ["one", "two"]


def test_predict_inputs_with_the_same_stem_keep_their_own_outputs(molecule_run, tmp_path):
    first, second = same_stem_inputs(tmp_path)
    out = tmp_path / "pred"
    assert main(["predict", str(molecule_run), str(first), str(second), "--out", str(out)]) == 0
    a = ase.io.read(out / "a_mol.atomlens.extxyz", index=":")
    b = ase.io.read(out / "b_mol.atomlens.extxyz", index=":")
    assert [len(a), len(b)] == [2, 3]
    assert a[0].get_chemical_formula() == next(read_structures(first)).formula
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["output"] for r in rows] == ["a_mol.atomlens.extxyz"] * 2 + [
        "b_mol.atomlens.extxyz"
    ] * 3
    assert [r["file"] for r in rows] == [str(first)] * 2 + [str(second)] * 3
    assert not list(out.glob(STAGING_PREFIX + "*"))


def test_failed_predict_leaves_the_old_outputs_untouched(molecule_run, tmp_path, capsys):
    out = tmp_path / "pred"
    good = DATA / "qm9_sample.extxyz"
    assert main(["predict", str(molecule_run), str(good), "--out", str(out)]) == 0
    before = snapshot(out)
    first, _ = same_stem_inputs(tmp_path)
    bad = overlapping_file(tmp_path)
    capsys.readouterr()
    assert main(["predict", str(molecule_run), str(first), str(bad), "--out", str(out)]) == 1
    assert "bad.xyz', frame 0" in capsys.readouterr().err
    assert snapshot(out) == before  # no mol.atomlens.extxyz beside the old predictions.csv
    assert not list(out.glob(STAGING_PREFIX + "*"))
    fresh = tmp_path / "fresh"
    assert main(["predict", str(molecule_run), str(first), str(bad), "--out", str(fresh)]) == 1
    assert not fresh.exists()


def test_explain_names_same_stem_inputs_apart(molecule_run, tmp_path):
    first, second = same_stem_inputs(tmp_path)
    out = tmp_path / "explained"
    argv = ["explain", str(molecule_run), str(first), str(second), "--out", str(out)]
    assert main([*argv, "--figures", "5"]) == 0
    names = [r["structure"] for r in csv.DictReader((out / "structures.csv").open())]
    assert names == ["a/mol.xyz#0", "a/mol.xyz#1", "b/mol.xyz#0", "b/mol.xyz#1", "b/mol.xyz#2"]
    assert len(list((out / "figures").glob("attention_0*.png"))) == 5
    # A second report with fewer figures leaves no figures of the first one behind.
    assert main([*argv, "--figures", "2"]) == 0
    assert len(list((out / "figures").glob("attention_0*.png"))) == 2
    assert not list(out.glob(STAGING_PREFIX + "*"))


def test_explain_failing_late_leaves_the_old_report_untouched(molecule_run, tmp_path, monkeypatch):
    predictor = load_model(molecule_run)
    structures = list(read_structures(DATA / "qm9_sample.extxyz", index=":4"))
    out = tmp_path / "explained"
    report.write_report(predictor, structures, out, structure_figures=2, progress=False)
    before = snapshot(out)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    # The tables and the page are written, then a figure fails.
    monkeypatch.setattr(report.figures, "plot_structure", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        report.write_report(predictor, structures[:3], out, structure_figures=2, progress=False)
    assert snapshot(out) == before
    assert not list(out.glob(STAGING_PREFIX + "*"))


def test_shared_ids_get_file_and_frame_and_then_a_counter(molecule_predictor):
    from atomlens.explain import explain

    structures = list(read_structures(DATA / "qm9_sample.extxyz", index=":2"))
    items = report.distinct_names(explain(molecule_predictor, structures + structures))
    names = [item.name for item in items]
    assert len(set(names)) == 4
    assert names[0] == "qm9_id=1 (data/qm9_sample.extxyz#0) (1)"
    assert names[2] == "qm9_id=1 (data/qm9_sample.extxyz#0) (2)"
