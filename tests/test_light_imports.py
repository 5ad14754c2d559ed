"""``import atomlens``, the spin models and the descriptor models do not load torch.

Each check runs in a fresh interpreter, since this test process has torch loaded already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
{code}
heavy = ["torch", "vesin", "chgnet", "pymatgen", "matminer"]
print(json.dumps({{name: name in sys.modules for name in heavy}}))
"""


def _loaded(code: str, cwd: Path | None = None) -> dict[str, bool]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import atomlens",
        "import atomlens.spins.workflow, atomlens.spins.config, atomlens.cli.spins",
        "from atomlens.spins.config import load_coercivity_config",
        "import atomlens.descriptors.models, atomlens.descriptors.table",
        "import atomlens.descriptors.splits, atomlens.descriptors.figures",
        "import atomlens.descriptors.sisso, atomlens.cli.descriptors",
        "import atomlens.yamlconfig, atomlens.plotting",
        "from atomlens.cli import _build_parser; _build_parser()",  # atomlens --help
    ],
)
def test_light_imports_leave_torch_unloaded(code: str) -> None:
    loaded = _loaded(code)
    assert not loaded["torch"], f"{code!r} imported torch"
    assert not loaded["vesin"], f"{code!r} imported vesin (which imports torch)"


def test_the_probe_sees_torch() -> None:
    """The check can fail: the SCANN predict path does load torch."""
    assert _loaded("import atomlens.inference")["torch"]
    assert _loaded("import atomlens; atomlens.load_model")["torch"]


def test_fit_table_runs_without_torch(tmp_path: Path) -> None:
    """XGBoost end to end. (``--model rf`` saves with skops, whose import walks scikit-learn's
    packages and so imports sklearn.externals.array_api_compat.torch when torch is installed.)
    """
    from atomlens.descriptors.synthetic import diffusivity_table

    table = tmp_path / "table.csv"
    diffusivity_table(n_compositions=20, seed=1).to_csv(table, index=False)
    code = (
        "from atomlens.cli import main\n"
        f"rc = main(['-q', 'fit-table', {str(table)!r}, '--target', 'lnD', '--model', 'xgboost',"
        f" '--folds', '2', '--permutation-repeats', '1', '--out', {str(tmp_path / 'out')!r}])\n"
        "assert rc == 0, rc"
    )
    loaded = _loaded(code)
    assert (tmp_path / "out" / "scores.json").is_file()
    assert not loaded["torch"]
    assert not loaded["matminer"]
