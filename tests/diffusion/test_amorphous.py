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


def _amorphous(out, composition, *extra):
    """``atomlens amorphous`` with EMT, 4 atoms and a 10-step melt (a second or so)."""
    argv = ["amorphous", composition, "--atoms", "4", "--potential", "emt", "--melt", "1500"]
    argv += ["--melt-steps", "10", "--segment-steps", "10", "--interval", "5", "--out", str(out)]
    return main([*argv, *extra])


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_amorphous_refuses_another_request_unless_overwrite(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert _amorphous(out, "Cu3Au") == 0
    request = json.loads((out / "request.json").read_text())
    assert request["composition"] == "Cu3Au" and request["melt"] == {
        "temperature_K": 1500.0,
        "steps": 10,
    }
    before = _files(out)
    capsys.readouterr()
    # Another composition (and another seed) in the same folder: refused, nothing touched.
    for extra in ([], ["--seed", "3"]):
        composition = "CuAu3" if not extra else "Cu3Au"
        assert _amorphous(out, composition, *extra) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--overwrite" in err, err
        assert ("composition" if not extra else "seed") in err, err
        assert _files(out) == before
    # --overwrite replaces the old run: the new cell has the new composition.
    (out / "notes.txt").write_text("mine")
    assert _amorphous(out, "CuAu3", "--overwrite") == 0
    symbols = ase.io.read(out / "packed.extxyz").get_chemical_symbols()
    assert symbols.count("Au") == 3 and symbols.count("Cu") == 1
    assert (out / "notes.txt").read_text() == "mine"  # not a run file: left alone
    # The same request resumes: no MD at all, the melt is reused.
    calls = []
    monkeypatch.setattr(ase.md.langevin.Langevin, "run", lambda self, steps: calls.append(steps))
    melt = (out / "melt_segment0000.extxyz").read_bytes()
    assert _amorphous(out, "CuAu3") == 0 and calls == []
    assert (out / "melt_segment0000.extxyz").read_bytes() == melt
    # A folder of an older atomlens (run files, no request record) is refused too.
    (out / "request.json").unlink()
    assert _amorphous(out, "CuAu3") == 1
    assert "without a record" in capsys.readouterr().err


def test_melt_quench_records_request_and_refuses_another(tmp_path):
    run = AmorphousRun(tmp_path, segment_steps=10, interval=5, progress=False)
    emt = make_calculator("emt")
    melt_quench("CuAu", 4, run, emt, melt_temperature=1500.0, melt_steps=10)
    assert json.loads((tmp_path / "request.json").read_text())["potential"] == "EMT"
    with pytest.raises(DataError, match=r"melt .*1500.* -> .*1600"):
        melt_quench("CuAu", 4, run, emt, melt_temperature=1600.0, melt_steps=10)
    # Settings of a stage that does not run are not part of the request.
    melt_quench("CuAu", 4, run, emt, melt_temperature=1500.0, melt_steps=10, anneal_steps=7)


def test_diverging_md_fails_naming_stage_and_segment(tmp_path, monkeypatch):
    """NaN positions and momenta after a segment stop the run; finished segments stay."""
    run = AmorphousRun(tmp_path, segment_steps=10, interval=5, progress=False)
    original = ase.md.langevin.Langevin.run
    segments = []

    def run_then_diverge(self, steps):
        original(self, steps)
        segments.append(steps)
        if len(segments) == 2:  # the second melt segment blows up
            self.atoms.positions[0] = np.nan
            self.atoms.set_momenta(np.full((len(self.atoms), 3), np.nan))

    monkeypatch.setattr(ase.md.langevin.Langevin, "run", run_then_diverge)
    with pytest.raises(DataError) as failure:
        melt_quench("CuAu", 4, run, make_calculator("emt"), melt_temperature=1500.0, melt_steps=30)
    message = str(failure.value)
    assert "stage 'melt'" in message and "segment 1" in message and "not finite" in message
    assert "\n" not in message
    assert (tmp_path / "melt_segment0000.extxyz").is_file()
    assert not (tmp_path / "melt_segment0001.extxyz").exists()
    frames = ase.io.read(tmp_path / "melt_segment0000.extxyz", index=":")
    assert all(np.isfinite(a.positions).all() for a in frames)


def test_check_structure_rejects_nan_momenta_and_positions():
    from atomlens.diffusion.amorphous import check_structure

    atoms = random_pack(["Cu", "Au"] * 2, 80.0, seed=0)
    atoms.calc = make_calculator("emt")
    atoms.set_momenta(np.zeros((4, 3)))
    check_structure(atoms, 0.7, "ok")
    atoms.set_momenta(np.full((4, 3), np.nan))
    with pytest.raises(DataError, match="here: momenta of 4 of 4 atoms are not finite"):
        check_structure(atoms, 0.7, "here")
    atoms.set_momenta(np.zeros((4, 3)))
    atoms.positions[2] = np.inf
    with pytest.raises(DataError, match="positions of 1 of 4 atoms"):
        check_structure(atoms, 0.7, "here")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"melt_temperature": -100.0}, "melt_temperature must be > 0 K, got -100"),
        ({"anneal_temperatures": (800.0, -5.0)}, "anneal_temperatures must be > 0 K, got -5"),
        ({"quench_temperatures": (float("nan"),)}, "quench_temperatures must be > 0 K"),
        ({"melt_steps": 0}, "melt_steps must be >= 1"),
    ],
)
def test_melt_quench_rejects_bad_settings_before_any_md(tmp_path, setting, message):
    run = AmorphousRun(tmp_path / "md", segment_steps=10, interval=5, progress=False)
    with pytest.raises(DataError, match=message):
        melt_quench("CuAu", 4, run, make_calculator("emt"), **({"melt_steps": 10} | setting))
    assert not (tmp_path / "md").exists()


@pytest.mark.parametrize("option", ["--melt", "--anneal", "--quench"])
def test_amorphous_command_rejects_negative_temperatures(tmp_path, capsys, option):
    out = tmp_path / "md"
    assert _amorphous(out, "CuAu", option, "-100") == 1
    err = capsys.readouterr().err
    assert option in err and "> 0" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
