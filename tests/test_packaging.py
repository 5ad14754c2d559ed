"""Packaging: shipped configs, `atomlens config`, the version, the license."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
import yaml

import atomlens
from atomlens.cli import main
from atomlens.config import validate_config
from atomlens.errors import DataError
from atomlens.spins.config import CoercivityConfig
from atomlens.yamlconfig import packaged_config_text, packaged_configs, validate_model

ROOT = Path(__file__).resolve().parents[1]


def test_every_packaged_config_validates() -> None:
    names = packaged_configs()
    assert {"qm9_homo", "mp_formation_energy", "coercivity_heisenberg"} <= set(names)
    for name in names:
        raw = yaml.safe_load(packaged_config_text(name))
        if name.startswith("coercivity"):
            validate_model(CoercivityConfig, raw, name)
        else:
            validate_config(raw, name)


def test_checkout_configs_folder_is_the_packaged_one() -> None:
    checkout = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    assert checkout == sorted(packaged_configs())
    assert (ROOT / "configs" / "qm9_homo.yaml").read_text() == packaged_config_text("qm9_homo")


def test_config_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(packaged_configs())
    assert any(line.startswith("qm9_homo ") and "QM9 HOMO" in line for line in lines)
    assert main(["config", "show", "qm9_homo.yaml"]) == 0
    assert capsys.readouterr().out == packaged_config_text("qm9_homo")


def test_config_show_unknown_name_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "qm9_homoo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("atomlens: error: no packaged config 'qm9_homoo'") and "qm9_homo," in err
    with pytest.raises(DataError):
        packaged_config_text("../pyproject")


def test_version_in_one_place(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"atomlens {atomlens.__version__}"
    assert importlib.metadata.version("atomlens") == atomlens.__version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]


def test_license_and_typing_marker() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (ROOT / "src" / "atomlens" / "py.typed").is_file()


def test_lazy_top_level_exports() -> None:
    from atomlens.explain.attention import explain
    from atomlens.inference import load_model
    from atomlens.structures import read_structures

    assert atomlens.load_model is load_model
    assert atomlens.read_structures is read_structures
    assert callable(atomlens.explain) and atomlens.explain.explain is explain
    assert {"load_model", "read_structures", "explain"} <= set(dir(atomlens))
    with pytest.raises(AttributeError):
        _ = atomlens.no_such_name
