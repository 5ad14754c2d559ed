import json

import ase.io
import ase.md.langevin
import numpy as np
import pytest

from atomlens.cli import main
from atomlens.diffusion.amorphous import (
    AmorphousRun,
    birch_murnaghan_v0,
    make_calculator,
    melt_quench,
    parse_composition,
    random_pack,
)
from atomlens.diffusion.msd import read_trajectory, species_msd
from atomlens.errors import DataError


def test_composition_and_packing():
    symbols = parse_composition("Li2Si2O5", 100)
    assert len(symbols) == 99 and symbols.count("Li") == 22  # 11 formula units
    atoms = random_pack(symbols, 1500.0, min_distance=1.8, seed=1)
    distances = atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() >= 1.8 * 0.9**3  # the tolerance may shrink a little
    with pytest.raises(DataError, match="cannot parse"):
        parse_composition("Li2Xx", 10)
    with pytest.raises(DataError, match="cannot pack"):
        random_pack(["Cu"] * 50, 10.0)


def test_birch_murnaghan_recovers_v0():
    v0, b0 = 1000.0, 80.0
    volumes = np.array([800.0, 1000.0, 1200.0]) * 1.05
    x = (v0 / volumes) ** (1 / 3)
    pressures = 1.5 * b0 * (x**7 - x**5)
    assert birch_murnaghan_v0(volumes, pressures) == pytest.approx(v0, rel=1e-6)


def test_melt_quench_resumes_from_finished_segments(tmp_path, monkeypatch):
    run = AmorphousRun(tmp_path, segment_steps=10, interval=5, progress=False)
    settings = {
        "melt_temperature": 2000.0,
        "melt_steps": 30,
        "anneal_temperatures": (800.0,),
        "anneal_steps": 20,
    }
    outputs = melt_quench("CuAu", 16, run, make_calculator("emt"), **settings)
    assert sorted(outputs) == ["anneal800", "melt"]
    assert len(list(tmp_path.glob("melt_segment*.extxyz"))) == 3
    melt = ase.io.read(outputs["melt"], index=":")
    assert len(melt) == 6 and all(a.info["stage"] == "melt" for a in melt)
    # A killed run: the last anneal segment is lost; rerunning redoes only that one.
    (tmp_path / "anneal800_segment0001.extxyz").unlink()
    calls = []
    original = ase.md.langevin.Langevin.run
    monkeypatch.setattr(
        ase.md.langevin.Langevin,
        "run",
        lambda self, steps: calls.append(steps) or original(self, steps),
    )
    melt_quench("CuAu", 16, run, make_calculator("emt"), **settings)
    assert calls == [10]
    assert (tmp_path / "anneal800_segment0001.extxyz").is_file()


def test_chgnet_md_on_a_small_li_cell(tmp_path):
    pytest.importorskip("chgnet")
    run = AmorphousRun(tmp_path, segment_steps=15, interval=3, progress=False)
    outputs = melt_quench(
        "Li2SiO3", 24, run, make_calculator("chgnet"), melt_temperature=3000.0, melt_steps=30
    )
    frames = ase.io.read(outputs["melt"], index=":")
    energies = [a.info["epot_eV"] for a in frames]
    assert np.all(np.isfinite(energies))
    for atoms in frames:
        d = atoms.get_all_distances(mic=True)
        np.fill_diagonal(d, np.inf)
        assert d.min() > 0.7
    msd = species_msd(read_trajectory(outputs["melt"], 6.0), "Li").sum(axis=1)
    assert msd[len(msd) // 2] > msd[1] > 0  # Li moves away from where it started


def test_amorphous_command_with_diffusion(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "amorphous",
        "CuAu",
        "--atoms",
        "16",
        "--potential",
        "emt",
        "--melt",
        "2000",
        "--melt-steps",
        "20",
        "--anneal",
        "1000",
        "1500",
        "--anneal-steps",
        "60",
        "--segment-steps",
        "20",
        "--interval",
        "2",
        "--diffusion",
        "Cu",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["diffusion"]) == 2 and "arrhenius" in summary
    assert "D(Cu, 1000 K)" in capsys.readouterr().out


def test_slow_quench_chains_stages_and_density_is_checked(tmp_path):
    from atomlens.diffusion.amorphous import check_structure

    run = AmorphousRun(tmp_path, segment_steps=10, interval=5, progress=False)
    outputs = melt_quench(
        "CuAu",
        16,
        run,
        make_calculator("emt"),
        melt_temperature=2000.0,
        melt_steps=10,
        quench_temperatures=(1500.0, 1000.0),
        quench_steps=10,
    )
    assert {"quench1500", "quench1000"} <= set(outputs)
    last = ase.io.read(outputs["quench1000"], index=-1)
    assert last.info["stage"] == "quench1000" and last.info["temperature_K"] == 1000.0
    assert (tmp_path / "quench_final.extxyz").is_file()
    exploded = ase.io.read(tmp_path / "quench_final.extxyz")
    exploded.set_cell(exploded.cell * 10, scale_atoms=True)
    exploded.calc = make_calculator("emt")
    with pytest.raises(DataError, match="density"):
        check_structure(exploded, 0.7, "test")


def test_volume_equilibration_fits_v0_between_the_trial_volumes(tmp_path):
    run = AmorphousRun(tmp_path, segment_steps=10, interval=5, progress=False)
    melt_quench(
        "CuAu",
        16,
        run,
        make_calculator("emt"),
        melt_temperature=1500.0,
        melt_steps=10,
        equilibrate_volume=True,
        volume_steps=10,
    )
    report = json.loads((tmp_path / "volume.json").read_text())
    assert len(report["volumes_A3"]) == 3
    assert report["pressures_GPa"][0] > report["pressures_GPa"][2]  # compressed: higher P
    assert min(report["volumes_A3"]) < report["v0_A3"] < max(report["volumes_A3"])
    assert report["converged_5kbar"] == (abs(report["pressure_at_v0_GPa"]) < 0.5)
