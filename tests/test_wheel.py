"""The wheel works on its own: installed with core dependencies only, no dev extras.

The wheel is built offline (``pip wheel --no-deps --no-build-isolation``) from a copy of
the source tree and installed (``--no-deps --no-index``) into a fresh venv. So that torch and
the other core dependencies are not downloaded again, the fresh venv sees, through one
``.pth`` file, an overlay folder holding links to exactly the installed distributions that
core's requirements need (followed transitively, without extras) and nothing else: pymatgen,
numba or matminer are not importable there. In it, the ``atomlens`` script prints its
version, lists the packaged configs, trains a tiny SCANN+ and predicts with it.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from atomlens import __version__
from atomlens.zoo import MODEL_FILES, shipped_models
from tests.training.conftest import TINY_MODEL

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def core_closure(requirements: list[str]) -> list[importlib.metadata.Distribution]:
    """Installed distributions needed by ``requirements`` (no extras), transitively."""
    found: dict[str, importlib.metadata.Distribution] = {}
    stack = [Requirement(r) for r in requirements]
    while stack:
        requirement = stack.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = _normal(requirement.name)
        if name in found:
            continue
        dist = importlib.metadata.distribution(requirement.name)
        assert requirement.specifier.contains(dist.version, prereleases=True), requirement
        found[name] = dist
        stack.extend(Requirement(r) for r in dist.requires or [])
    return list(found.values())


def link_overlay(dists: list[importlib.metadata.Distribution], overlay: Path) -> None:
    """Link each distribution's top-level files and folders (its dist-info too) into overlay."""
    overlay.mkdir()
    for dist in dists:
        base = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            target = overlay / top
            if (base / top).exists() and not target.exists():
                target.symlink_to(base / top)


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_wheel_installs_and_runs_with_core_dependencies_only(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), "."],
         source, env)  # fmt: skip
    (wheel,) = wheels.glob("atomlens-*.whl")
    assert wheel.name.startswith(f"atomlens-{__version__}-")
    carried = set(zipfile.ZipFile(wheel).namelist())
    for name in shipped_models(ROOT / "src" / "atomlens" / "zoo"):  # every file of each model
        assert {f"atomlens/zoo/{name}/{f}" for f in MODEL_FILES} <= carried, name

    fresh = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=False).create(fresh)
    python = fresh / "bin" / "python"
    site = Path(_run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                     tmp_path, env).strip())  # fmt: skip
    core = importlib.metadata.metadata("atomlens").get_all("Requires-Dist")
    dists = core_closure([r for r in core if "extra ==" not in r])
    assert {"torch", "numpy", "spglib", "matplotlib"} <= {_normal(d.name) for d in dists}
    link_overlay(dists, tmp_path / "core")
    (site / "core_dependencies.pth").write_text(f"{tmp_path / 'core'}\n")
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
         tmp_path, env)  # fmt: skip

    work = tmp_path / "work"
    work.mkdir()
    atomlens = str(fresh / "bin" / "atomlens")
    where = _run([str(python), "-c", "import atomlens; print(atomlens.__file__)"], work, env)
    assert where.startswith(str(site)), where  # the wheel, not the checkout
    for extra_only in ("pymatgen", "numba", "matminer", "pytest"):
        probe = subprocess.run([str(python), "-c", f"import {extra_only}"], cwd=work, env=env)
        assert probe.returncode != 0, f"{extra_only} is importable in the core-only venv"

    assert _run([atomlens, "--version"], work, env).strip() == f"atomlens {__version__}"
    listed = _run([atomlens, "config", "list"], work, env)
    assert "qm9_homo" in listed and "coercivity_heisenberg" in listed
    assert "run_dir: runs/qm9_homo" in _run([atomlens, "config", "show", "qm9_homo"], work, env)

    config = {
        "run_dir": "runs/tiny",
        "data": {
            "source": str(DATA / "qm9_sample.extxyz"),
            "target": "homo",
            "cache_dir": str(tmp_path / "cache"),
            "split": {"train": 8, "val": 2, "test": 2, "seed": 1},
        },
        "model": TINY_MODEL,
        "training": {"epochs": 2, "batch_size": 4, "seed": 3, "threads": 1, "device": "cpu"},
    }
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    _run([atomlens, "-q", "train", "tiny.yaml"], work, env)
    _run([atomlens, "-q", "predict", "runs/tiny", str(DATA / "qm9_sample.extxyz"),
          "--out", "predictions"], work, env)  # fmt: skip
    rows = (work / "predictions" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 12, rows[:3]
