"""`atomlens coercivity` end to end on a small grain: outputs, physics bounds, resume, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from atomlens.cli import main
from atomlens.spins.config import load_coercivity_config
from atomlens.spins.workflow import build_model, sample_free_energy

ANISOTROPY = 0.5


def write_config(tmp_path, **changes):
    config = {
        "out": str(tmp_path / "run"),
        "model": {"kind": "simple_cubic", "params": {"L": 2, "J": 1.0, "D": ANISOTROPY}},
        "temperatures": [0.1, 0.2, 0.3],
        "sampling": {
            "bins": 32,
            "windows": 2,
            "walkers_per_window": 1,
            "lnf_final": 1e-4,
            "threads": 1,
            "m_max": 1.0,  # 8 strongly coupled spins reach saturation easily
        },
        "smoothing": 5,
    }
    config.update(changes)
    path = tmp_path / "coercivity.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_coercivity_command_writes_tables_and_figures(tmp_path, capsys):
    path = write_config(tmp_path)
    assert main(["coercivity", str(path), "--no-progress"]) == 0
    out = tmp_path / "run"
    summary = json.loads((out / "coercivity.json").read_text())
    rows = summary["coercivity"]
    assert [row["temperature"] for row in rows] == [0.1, 0.2, 0.3]
    spinodal = np.array([row["hc_spinodal"] for row in rows], dtype=float)
    # a 2x2x2 cluster with strong exchange reverses almost coherently: the Stoner-Wohlfarth
    # field 2D per unit moment bounds the spinodal, which thermal fluctuations lower
    assert np.all(spinodal < 2 * ANISOTROPY * 1.05)
    assert spinodal[0] > 0.7 * 2 * ANISOTROPY
    assert spinodal[-1] < spinodal[0]
    thermal = np.array([row["hc_thermal"] for row in rows], dtype=float)
    assert np.all(thermal <= spinodal + 1e-9)
    # the zero-field barrier of 8 spins cannot exceed the coherent one, 8 D
    barrier = np.array([row["barrier_zero_field"] for row in rows], dtype=float)
    assert np.all(barrier < 8 * ANISOTROPY * 1.05) and np.all(barrier > 0)
    for name in ("coercivity.csv", "figures/coercivity.png", "figures/barrier.png"):
        assert (out / name).stat().st_size > 0
    for t in (0.1, 0.2, 0.3):
        table = np.genfromtxt(out / f"T_{t:g}" / "free_energy.csv", delimiter=",", names=True)
        assert len(table) == 32
        assert (out / "figures" / f"free_energy_T{t:g}.png").exists()
    assert summary["cost"]["trials"] > 0
    printed = capsys.readouterr().out
    assert "Hc spinodal" in printed and "coercivity.csv" in printed

    # a second run reuses every finished temperature and gives the same table
    before = (out / "coercivity.csv").read_text()
    assert main(["coercivity", str(path), "--no-progress"]) == 0
    assert (out / "coercivity.csv").read_text() == before


def test_full_range_is_symmetric_and_agrees_with_the_mirrored_half(tmp_path):
    config = load_coercivity_config(write_config(tmp_path))
    system = build_model(config.model)
    full_sampling = config.sampling.model_copy(update={"mirror": False})
    full, record = sample_free_energy(system, 0.1, full_sampling, tmp_path / "full", progress=False)
    half, _ = sample_free_energy(system, 0.1, config.sampling, tmp_path / "half", progress=False)
    assert record["visited_bins"] == 32 and not record["mirrored"]
    np.testing.assert_allclose(full.m, half.m)
    scale = np.nanmax(full.free_energy) - np.nanmin(full.free_energy)
    # time-reversal symmetry F(M) = F(-M) holds for the full-range estimate within its noise,
    assert np.nanmax(np.abs(full.free_energy - full.free_energy[::-1])) < 0.1 * scale
    # and the mirrored half-range run (half the cost) gives the same landscape
    assert np.nanmax(np.abs(full.free_energy - half.free_energy)) < 0.1 * scale


def test_stopped_run_reports_and_resumes(tmp_path, capsys):
    path = write_config(tmp_path, temperatures=[0.1])
    assert (
        main(["coercivity", str(path), "--no-progress", "--set", "sampling.max_seconds=1e-6"]) == 0
    )
    assert "run the same command again" in capsys.readouterr().err
    assert (tmp_path / "run" / "T_0.1" / "range0" / "rewl_rank0.npz").exists()
    assert not (tmp_path / "run" / "coercivity.json").exists()
    assert main(["coercivity", str(path), "--no-progress"]) == 0
    assert (tmp_path / "run" / "coercivity.json").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"temperatures": [0.1, -1.0]}, "temperature"),
        ({"model": {"kind": "bcc", "params": {}}}, "model.kind"),
        ({"sampling": {"bins": 32, "colour": 1}}, "sampling.colour"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, capsys, change, message):
    path = write_config(tmp_path, **change)
    assert main(["coercivity", str(path)]) == 1
    err = capsys.readouterr().err
    assert "coercivity.yaml" in err and message in err


def test_bad_model_parameter_is_a_clear_error(tmp_path, capsys):
    path = write_config(tmp_path, model={"kind": "simple_cubic", "params": {"L": 2, "K": 1}})
    assert main(["coercivity", str(path)]) == 1
    assert "simple_cubic" in capsys.readouterr().err


def test_range_is_widened_while_the_free_energy_falls_at_its_edge(tmp_path):
    config = load_coercivity_config(write_config(tmp_path))
    system = build_model(config.model)
    # the 8-spin grain's minimum lies near m = 0.99 at T = 0.1: a range cut at 0.4 is widened
    # twice (0.4 -> 0.6 -> 0.733) and the minimum is still beyond it, so it stays unresolved
    sampling = config.sampling.model_copy(update={"m_max": 0.4})
    curve, record = sample_free_energy(system, 0.1, sampling, tmp_path / "cut", progress=False)
    np.testing.assert_allclose(record["ranges_tried"], [0.4, 0.6, 0.6 + 0.4 / 3])
    assert np.isnan(curve.free_energy[[0, -1]]).all()  # the unsampled ends are masked
    assert np.nanargmin(curve.free_energy[curve.m > 0]) >= (curve.m > 0).sum() - 3
    single = config.sampling.model_copy(update={"m_max": 0.4, "extend_range": 0})
    _, record = sample_free_energy(system, 0.1, single, tmp_path / "once", progress=False)
    assert record["ranges_tried"] == [0.4]
