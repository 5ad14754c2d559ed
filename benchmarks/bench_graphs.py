"""Graph-building throughput and correctness against the pymatgen VoronoiNN reference path.

Prints figures and writes JSON to benchmarks/results/graphs.json. Usage:
    python benchmarks/bench_graphs.py --crystals ../shared/data/mp_crystals_36k.extxyz
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from atomlens.datasets.cache import build_graph_cache, library_versions
from atomlens.datasets.sources import load_source
from atomlens.files import write_json_atomic
from atomlens.graphs import voronoi_graph, voronoi_graphs
from atomlens.graphs.reference import pymatgen_voronoi_graph
from atomlens.structures import read_structures

RESULTS = Path(__file__).parent / "results"


def edge_table(graph) -> dict:
    return {
        (int(c), int(n), tuple(int(x) for x in s)): float(w)
        for c, n, s, w in zip(
            graph.centers, graph.neighbors, graph.shifts, graph.solid_angle, strict=True
        )
    }


def compare_with_reference(path: Path, n_sample: int, seed: int) -> dict:
    """Neighbour sets and solid angles vs pymatgen on a random sample of crystals."""
    structures = list(read_structures(path))
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(structures), size=min(n_sample, len(structures)), replace=False)
    fast_s = ref_s = 0.0
    mismatched, worst_rel, atoms = [], 0.0, 0
    for k in sample:
        s = structures[int(k)]
        atoms += len(s)
        t = time.perf_counter()
        ours = voronoi_graph(s)
        fast_s += time.perf_counter() - t
        t = time.perf_counter()
        ref = pymatgen_voronoi_graph(s)
        ref_s += time.perf_counter() - t
        a, b = edge_table(ours), edge_table(ref)
        if a.keys() != b.keys():
            mismatched.append(int(k))
            continue
        rel = max((abs(a[e] - b[e]) / b[e] for e in b), default=0.0)
        worst_rel = max(worst_rel, rel)
        if rel > 1e-6:
            mismatched.append(int(k))
    picked = [structures[int(k)] for k in sample]
    t = time.perf_counter()
    voronoi_graphs(picked)
    batched_s = time.perf_counter() - t
    return {
        "n_crystals": int(sample.size),
        "n_atoms": atoms,
        "neighbour_set_or_angle_mismatches": mismatched,
        "max_relative_solid_angle_difference": worst_rel,
        "fast_crystals_per_s_1core": sample.size / fast_s,
        "reference_crystals_per_s_1core": sample.size / ref_s,
        "reference_ms_per_atom": 1e3 * ref_s / atoms,
        "speedup_1core": ref_s / fast_s,
        "batched_crystals_per_s_1core": sample.size / batched_s,
        "speedup_batched_1core": ref_s / batched_s,
    }


def reference_molecule_rate(n: int) -> dict:
    """The reference's molecule path: boxed Molecule + VoronoiNN per atom (pymatgen)."""
    from pymatgen.analysis.local_env import VoronoiNN
    from pymatgen.core import Molecule

    source = load_source("qm9", limit=n)
    finder = VoronoiNN(weight="solid_angle", allow_pathological=True, compute_adj_neighbors=False)
    t = time.perf_counter()
    for s in source.structures:
        mol = Molecule(s.numbers, s.positions)
        extent = np.ptp(s.positions, axis=0) + 0.1
        boxed = mol.get_boxed_structure(*np.maximum(10.0, extent), reorder=False)
        for i in range(len(boxed)):
            finder.get_voronoi_polyhedra(boxed, i)
    ref_s = time.perf_counter() - t
    t = time.perf_counter()
    for s in source.structures:
        voronoi_graph(s)
    fast_s = time.perf_counter() - t
    t = time.perf_counter()
    voronoi_graphs(source.structures)  # the path the cache builder takes
    batched_s = time.perf_counter() - t
    return {
        "n_molecules": n,
        "reference_ms_per_molecule": 1e3 * ref_s / n,
        "fast_ms_per_molecule_1core": 1e3 * fast_s / n,
        "speedup_1core": ref_s / fast_s,
        "batched_ms_per_molecule_1core": 1e3 * batched_s / n,
        "speedup_batched_1core": ref_s / batched_s,
    }


def timed_build(spec: str, targets: list[str] | None, workers: int, limit: int | None) -> dict:
    t = time.perf_counter()
    source = load_source(spec, targets=targets, limit=limit)
    load_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        build_graph_cache(source, cache_dir=cache, workers=workers, progress=False)
        build_s = time.perf_counter() - t
    return {
        "source": spec,
        "structures": len(source),
        "workers": workers,
        "load_seconds": load_s,
        "graph_seconds": build_s,
        "total_seconds": load_s + build_s,
        "structures_per_s_graphs": len(source) / build_s,
        "structures_per_s_total": len(source) / (load_s + build_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crystals", type=Path, required=True, help="extxyz file of crystals")
    parser.add_argument("--sample", type=int, default=200, help="crystals compared to pymatgen")
    parser.add_argument("--molecule-sample", type=int, default=200)
    parser.add_argument("--qm9-limit", type=int, default=None, help="default: all of QM9")
    parser.add_argument("--crystal-limit", type=int, default=None, help="default: all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "graphs.json")
    args = parser.parse_args()

    report = {"versions": library_versions(), "cpu_count": os.cpu_count()}
    report["crystal_reference"] = compare_with_reference(args.crystals, args.sample, args.seed)
    print("vs pymatgen:", json.dumps(report["crystal_reference"], indent=1))
    report["molecule_reference"] = reference_molecule_rate(args.molecule_sample)
    print("molecule reference:", json.dumps(report["molecule_reference"], indent=1))
    report["qm9_build"] = timed_build("qm9", ["homo", "lumo", "gap"], args.workers, args.qm9_limit)
    print("QM9 build:", json.dumps(report["qm9_build"], indent=1))
    report["crystal_build"] = timed_build(
        str(args.crystals),
        ["formation_energy_per_atom", "band_gap"],
        args.workers,
        args.crystal_limit,
    )
    print("crystal build:", json.dumps(report["crystal_build"], indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
