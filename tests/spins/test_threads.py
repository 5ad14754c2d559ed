"""numba's OpenMP threads start with the passive wait policy (issue 15, item 19).

The speed figures are in benchmarks/bench_spins.py (mode ``threads``); here only what can be
checked without timing: the policy chosen, and that the environment is left as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json, os
import numba
from atomlens.spins.lattice import simple_cubic_grain
from atomlens.spins.wanglandau import Binning, ReplicaExchangeWangLandau, WangLandauSettings

before = os.environ.get("OMP_WAIT_POLICY")
from atomlens.spins.parallel import start_threads
policy = start_threads()
system = simple_cubic_grain(2)
sampler = ReplicaExchangeWangLandau(
    system, Binning.magnetisation(system, 1.0, 16), WangLandauSettings(threads=1)
)
sampler._sweep(100)
print(json.dumps({"policy": policy, "before": before, "after": os.environ.get("OMP_WAIT_POLICY"),
                  "layer": numba.threading_layer()}))
"""


def run(env_policy: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_threads_start_passive_and_the_environment_is_restored():
    report = run(None)
    if report["layer"] != "omp":
        pytest.skip(f"numba uses the {report['layer']} threading layer, not OpenMP")
    assert report["policy"] == "PASSIVE"
    assert report["before"] is None and report["after"] is None  # not leaked to others


def test_a_policy_set_by_the_user_is_kept():
    report = run("active")
    assert report["policy"] == "active" and report["after"] == "active"
