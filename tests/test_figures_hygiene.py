"""Figures never touch pyplot or the backend, so atomlens is safe inside a notebook."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "atomlens"


def test_no_backend_switch_or_pyplot_in_the_package() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if re.search(
            r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import pyplot",
            path.read_text(),
        )
    ]
    assert offenders == []


def test_figures_leave_the_users_backend_alone(tmp_path: Path) -> None:
    """Write figures of three domains in a process whose backend is set; pyplot stays away."""
    code = f"""
import sys
import matplotlib
matplotlib.use("svg")
import numpy as np
from pathlib import Path
from atomlens.descriptors.figures import plot_importances, plot_parity
from atomlens.spins.figures import plot_coercivity
from atomlens.plotting import subplots
out = Path({str(tmp_path)!r})
y = np.linspace(0.0, 1.0, 20)
plot_parity(y, y + 0.1, np.full(20, 0.05), "parity", out / "parity.png")
plot_importances(["a", "b", "c"], np.ones(3), np.arange(3.0), out / "importances.png")
rows = [{{"temperature": t, "hc_spinodal": 1 / t, "hc_thermal": 0.5 / t}} for t in (1.0, 2.0)]
plot_coercivity(rows, out / "hc.png")
figure, axis = subplots(figsize=(2, 2))
assert type(figure).__module__ == "matplotlib.figure", type(figure)
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in ("parity.png", "importances.png", "hc.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
