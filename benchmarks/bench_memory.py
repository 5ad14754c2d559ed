"""Peak memory of the cached QM9 graphs when loaded for training (one full epoch of batches).

Builds (or reuses) the QM9 Voronoi cache, then measures in fresh processes the peak resident
memory of: memory-mapped loading + one shuffled epoch of batches, and loading fully into RAM.
Writes benchmarks/results/memory.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

PROBE = r"""
import json, sys, time
import numpy as np
from atomlens.datasets import GraphDataset
from atomlens.batching import iterate_batches
import torch  # noqa: F401  (count the framework in the baseline)

def status_kib(field):  # VmHWM (peak) and VmRSS from /proc, reset at exec
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

base = status_kib("VmHWM")
dataset = GraphDataset(sys.argv[1], mmap=sys.argv[2] == "mmap")
t = time.perf_counter()
n = 0
for batch in iterate_batches(dataset, np.arange(len(dataset)), 128, shuffle=True, seed=0):
    n += batch.num_graphs
epoch = time.perf_counter() - t
peak = status_kib("VmHWM")
print(json.dumps({"baseline_mib": base / 1024, "peak_mib": peak / 1024,
                  "dataset_mib": (peak - base) / 1024,
                  "rss_after_epoch_mib": status_kib("VmRSS") / 1024, "graphs": n,
                  "collate_epoch_seconds": epoch,
                  "collate_graphs_per_s": n / epoch}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/atomlens"))
    parser.add_argument("--out", type=Path, default=RESULTS / "memory.json")
    args = parser.parse_args()

    from atomlens.datasets import build_graph_cache, load_source

    source = load_source("qm9", targets=["homo", "lumo", "gap"])
    path = build_graph_cache(source, cache_dir=args.cache_dir, workers=2)
    del source  # the probes run in fresh processes; keep this one small
    on_disk = sum(f.stat().st_size for f in path.iterdir()) / 2**20
    report = {"cache_entry": str(path), "on_disk_mib": on_disk}
    for mode in ("mmap", "ram"):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(path), mode],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        report[mode] = json.loads(out)
        print(mode, report[mode])
    print(f"cache on disk: {on_disk:.1f} MiB")
    from atomlens.files import write_json_atomic

    write_json_atomic(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
