import json

import ase
import ase.io
import numpy as np
import pytest

from atomlens.cli import main
from atomlens.diffusion.arrhenius import format_factor
from atomlens.diffusion.msd import read_trajectory
from atomlens.diffusion.rdf import partial_rdfs, rdf_r2
from atomlens.units import KB_EV
from tests.diffusion.test_msd import CELL, random_walk


def write_traj(path, traj):
    frames = [
        ase.Atoms(numbers=traj.numbers, positions=p, cell=traj.cell, pbc=True)
        for p in traj.positions
    ]
    ase.io.write(path, frames)
    return path


def test_diffusion_and_arrhenius_commands(tmp_path, capsys):
    ea, d0 = 0.3, 1e-3
    results = []
    for k, temperature in enumerate((1000.0, 1500.0, 2000.0)):
        d = d0 * np.exp(-ea / (KB_EV * temperature))
        path = write_traj(
            tmp_path / f"t{k}.extxyz", random_walk(d_cm2_s=d, n_li=128, n_frames=1000, seed=k)
        )
        out = tmp_path / f"d{k}"
        assert (
            main(
                [
                    "diffusion",
                    str(path),
                    "--species",
                    "Li",
                    "--temperature",
                    str(temperature),
                    "--timestep",
                    "100",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        summary = json.loads((out / "diffusion.json").read_text())
        assert summary["diffusivity_cm2_s"] == pytest.approx(d, rel=0.1)
        assert (out / "msd.png").stat().st_size > 1000
        results.append(str(out / "diffusion.json"))
    assert "D = " in capsys.readouterr().out
    assert main(["arrhenius", *results, "--at", "300", "--out", str(tmp_path / "a")]) == 0
    fit = json.loads((tmp_path / "a" / "arrhenius.json").read_text())
    assert fit["activation_energy_eV"] == pytest.approx(ea, abs=0.03)
    assert fit["error_source"] == "input errors" and fit["dof"] == 1
    low, high = fit["activation_energy_95_eV"]
    assert low < fit["activation_energy_eV"] < high
    printed = capsys.readouterr().out
    assert "Ea = " in printed and "95 %" in printed
    assert f"(x/÷ {format_factor(fit['extrapolated_lnD_std'])})" in printed
    assert main(["arrhenius", results[0], "--out", str(tmp_path / "b")]) == 1
    assert "two different temperatures" in capsys.readouterr().err


def test_rdf_of_a_trajectory_against_itself_and_ideal_gas(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frames = [
        ase.Atoms("Li100O100", positions=rng.uniform(0, 15, (200, 3)), cell=CELL, pbc=True)
        for _ in range(20)
    ]
    path = tmp_path / "gas.extxyz"
    ase.io.write(path, frames)
    r, rdfs = partial_rdfs(read_trajectory(path, 1.0), r_max=6.0, bins=30)
    assert r[0] == pytest.approx(0.1) and len(r) == 30
    assert set(rdfs) == {"Li-Li", "Li-O", "O-O", "total"}
    # Uncorrelated points: g(r) = 1 on average beyond the noisy first shells.
    for values in rdfs.values():
        assert np.mean(values[10:]) == pytest.approx(1.0, abs=0.05)
    assert rdf_r2(rdfs, rdfs) == {k: 1.0 for k in rdfs}
    assert (
        main(
            [
                "rdf",
                str(path),
                "--compare",
                str(path),
                "--bins",
                "30",
                "--out",
                str(tmp_path / "rdf"),
            ]
        )
        == 0
    )
    scores = json.loads((tmp_path / "rdf" / "rdf_r2.json").read_text())
    assert all(v == 1.0 for v in scores.values())
    assert (tmp_path / "rdf" / "rdf.csv").is_file()
