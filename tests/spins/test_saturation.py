"""A metastable minimum at saturation (issue 15, item 16): one uniaxial spin, m_max auto."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from atomlens.cli import main
from atomlens.spins.config import SamplingConfig
from atomlens.spins.landscape import FreeEnergyCurve, coercivity
from atomlens.spins.workflow import saturate

D = 1.0  # anisotropy of the single spin: Stoner-Wohlfarth field 2D, barrier D at H = 0
C = 25.0


def single_spin_config(tmp_path, temperatures, **sampling):
    config = {
        "out": str(tmp_path / "run"),
        "model": {"kind": "simple_cubic", "params": {"L": 1, "D": D}},
        "temperatures": temperatures,
        # m_max is left at its default, auto
        "sampling": {"bins": 32, "windows": 2, "walkers_per_window": 1, "lnf_final": 1e-4,
                     "threads": 1, **sampling},
        "smoothing": 5,
    }  # fmt: skip
    path = tmp_path / "single.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_saturated_zero_field_state_includes_m_equal_one(tmp_path, capsys):
    path = single_spin_config(tmp_path, [0.02])
    assert main(["coercivity", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "run"
    record = json.loads((out / "T_0.02" / "sampling.json").read_text())
    assert record["m_max"] == 1.0 and record["ranges_tried"] == [1.0]
    table = np.genfromtxt(out / "T_0.02" / "free_energy.csv", delimiter=",", names=True)
    assert table["visited"].all()  # no masked edge bin: the range reaches saturation
    (row,) = json.loads((out / "coercivity.json").read_text())["coercivity"]
    # one classical spin: dF(H) = D (1 - H / 2D)^2, thermal H_c = 2D (1 - sqrt(c T / D))
    assert row["barrier_zero_field"] == pytest.approx(D, rel=0.1)
    assert row["hc_spinodal"] == pytest.approx(2 * D, rel=0.1)
    assert row["hc_thermal"] == pytest.approx(2 * D * (1 - math.sqrt(C * 0.02 / D)), rel=0.15)
    assert row["below_threshold_at_zero_field"] is False


def test_all_nan_result_exits_non_zero(tmp_path, capsys):
    # a range cut far below saturation, never widened: no temperature resolves its minimum
    path = single_spin_config(tmp_path, [0.02, 0.04], m_max=0.3, extend_range=0)
    assert main(["coercivity", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no coercive field at any temperature" in lines[0], err
    out = tmp_path / "run"
    assert not (out / "coercivity.json").exists() and not (out / "figures").exists()
    assert (out / "T_0.02" / "free_energy.csv").exists()  # the samples are kept


def test_unresolved_zero_field_is_not_below_threshold():
    # F still falls at the masked edges: the minimum lies beyond the sampled range
    m = np.linspace(-0.4, 0.4, 41)
    free = -D * m**2
    free[[0, -1]] = np.nan
    result = coercivity(FreeEnergyCurve(0.02, m, free), c=C)
    assert not result.resolved_at_zero_field
    assert math.isnan(result.hc_spinodal) and math.isnan(result.hc_thermal)
    assert result.below_threshold_at_zero_field is False


def test_saturate_snaps_within_one_bin():
    sampling = SamplingConfig(bins=32)  # bins of 2/32 = 0.0625 in m
    assert saturate(0.99998, sampling) == 1.0
    assert saturate(0.95, sampling) == 1.0
    assert saturate(0.9, sampling) == 0.9
    assert saturate(0.4, sampling) == 0.4
