import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_quickstart_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["quickstart.py", str(tmp_path)])
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "C2H6O: " in out and "Si2: solid angles" in out
    assert "batch: 32 molecules" in out
    assert (tmp_path / "split.json").is_file()


def test_descriptor_example_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["descriptor_models.py", str(tmp_path)])
    runpy.run_path(str(EXAMPLES / "descriptor_models.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "best 3-feature model: lnD = " in out and "inv_kBT" in out
    assert "grouped 5-fold CV" in out and "rows 5-fold CV" in out


def test_diffusion_example_runs(capsys):
    runpy.run_path(str(EXAMPLES / "diffusion_analysis.py"), run_name="__main__")
    out = capsys.readouterr().out
    ea = float(out.split("Ea = ")[1].split()[0])
    assert abs(ea - 0.30) < 0.03


def test_coercivity_example_runs(capsys):
    runpy.run_path(str(EXAMPLES / "coercivity_grain.py"), run_name="__main__")
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [float(row[0]) for row in rows] == [0.1, 0.2, 0.3]
    spinodal = [float(row[2]) for row in rows]
    # below the Stoner-Wohlfarth field of a coherent macrospin (2D = 0.6 J), above zero
    assert all(0.2 < value < 0.6 for value in spinodal)


def test_sen_example_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["sen_kfold.py", str(tmp_path)])
    runpy.run_path(str(EXAMPLES / "sen_kfold.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "NaCl: space group 225 (cubic), site orders [48, 48]" in out
    assert "| mean |" in out and "D matrix shape: (16, 6)" in out


@pytest.mark.slow  # ten tiny MD jobs, featurize, RF, XGBoost, SISSO: about a minute idle
def test_amorphous_database_example_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["amorphous_database.py", str(tmp_path)])
    runpy.run_path(str(EXAMPLES / "amorphous_database.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "10 job(s) done, 0 failed" in out and "Ea (eV)" in out
    assert "10 structures x 44 columns" in out  # lnD and the 43 features
    assert "xgboost on 10 rows" in out and "D=2:" in out
    assert (tmp_path / "arrhenius_all.png").is_file() and (tmp_path / "sisso.json").is_file()
