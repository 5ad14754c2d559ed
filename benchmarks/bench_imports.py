"""Import cost before and after issue 18 part 3 (light ``import atomlens``, torch-free spins).

Runs ``python -c CODE`` in fresh interpreters, the old and the new source tree side by
side (interleaved, same venv; the old tree is a ``git worktree`` of ``--old`` put first on
PYTHONPATH), and reports the median wall time per case, whether torch was loaded, and how
many modules were. Writes benchmarks/results/imports.json.

    python benchmarks/bench_imports.py [--old b61d445~1] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "python -c pass (interpreter start)": "pass",
    "import atomlens": "import atomlens",
    "import atomlens.spins.workflow": "import atomlens.spins.workflow",
    "descriptors fit-table modules": (
        "import atomlens.descriptors.models, atomlens.descriptors.table, "
        "atomlens.descriptors.splits, atomlens.descriptors.figures"
    ),
    "atomlens CLI parser (--help)": "from atomlens.cli import _build_parser; _build_parser()",
    "SCANN predict path (import atomlens.inference)": "import atomlens.inference",
    # vesin imports torch when it is installed; atomlens imports vesin only where it
    # computes neighbour lists (graphs, structure checks, spin lattices from structures)
    "import vesin": "import vesin",
}

PROBE = "{code}\nimport sys\nprint('torch' in sys.modules, len(sys.modules))"


def run_once(code: str, src: Path, cwd: Path) -> tuple[float, bool, int]:
    """Wall time of one fresh interpreter running ``code`` with ``src`` first on the path."""
    env = dict(os.environ, PYTHONPATH=str(src))
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return time.perf_counter() - start, out[0] == "True", int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="b61d445~1", help="git revision of the old tree")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/imports.json")
    args = parser.parse_args()
    old_rev = subprocess.run(
        ["git", "rev-parse", "--short", args.old], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    new_rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "old"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(old_tree), old_rev],
            cwd=ROOT, check=True,
        )  # fmt: skip
        try:
            trees = {"old": old_tree / "src", "new": ROOT / "src"}
            for src in trees.values():  # compile the byte code once, outside the timing
                run_once("import atomlens.inference, atomlens.spins.workflow", src, Path(tmp))
            times: dict[str, dict[str, list[float]]] = {c: {"old": [], "new": []} for c in CASES}
            facts: dict[str, dict[str, tuple[bool, int]]] = {c: {} for c in CASES}
            for _ in range(args.repeats):
                for case, code in CASES.items():
                    for version, src in trees.items():
                        seconds, torch_loaded, modules = run_once(code, src, Path(tmp))
                        times[case][version].append(seconds)
                        facts[case][version] = (torch_loaded, modules)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=True
            )
    results = []
    print(f"old {old_rev}, new {new_rev} (working tree); median of {args.repeats} runs, seconds")
    print(f"{'case':50s} {'old':>7s} {'new':>7s}  torch old/new  modules old/new")
    for case in CASES:
        row = {"case": case, "code": CASES[case]}
        for version in ("old", "new"):
            row[version] = {
                "median_s": round(statistics.median(times[case][version]), 3),
                "min_s": round(min(times[case][version]), 3),
                "torch_loaded": facts[case][version][0],
                "modules": facts[case][version][1],
            }
        results.append(row)
        print(
            f"{case:50s} {row['old']['median_s']:7.3f} {row['new']['median_s']:7.3f}  "
            f"{row['old']['torch_loaded']!s:>5s}/{row['new']['torch_loaded']!s:<5s}    "
            f"{row['old']['modules']}/{row['new']['modules']}"
        )
    report = {
        "old": old_rev,
        "new": f"{new_rev} + working tree",
        "repeats": args.repeats,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from atomlens.files import write_json_atomic

    write_json_atomic(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
