"""Radial distribution functions of periodic trajectories, and how alike two sets are."""

from __future__ import annotations

import numpy as np

from atomlens.diffusion.msd import Trajectory


def partial_rdfs(
    traj: Trajectory, r_max: float = 6.0, bins: int = 120, every: int = 1
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """g_ab(r) for every element pair, and the total g(r), averaged over frames.

    Args:
        traj: A periodic trajectory.
        r_max: Largest distance in Å (at most half the shortest cell height is exact).
        bins: Histogram bins.
        every: Use every ``every``-th frame.

    Returns:
        Bin centres (bins,) and ``{"A-B": g(r), ..., "total": g(r)}``.
    """
    from ase.data import chemical_symbols
    from vesin import NeighborList

    edges = np.linspace(0.0, r_max, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    volume = abs(np.linalg.det(traj.cell))
    kinds = sorted(set(traj.numbers.tolist()))
    counts = {z: int(np.sum(traj.numbers == z)) for z in kinds}
    histograms = {(a, b): np.zeros(bins) for a in kinds for b in kinds if a <= b}
    total = np.zeros(bins)
    calculator = NeighborList(cutoff=r_max, full_list=False)
    frames = range(0, traj.n_frames, every)
    for f in frames:
        i, j, d = calculator.compute(
            points=traj.positions[f], box=traj.cell, periodic=True, quantities="ijd"
        )
        zi, zj = traj.numbers[i], traj.numbers[j]
        total += np.histogram(d, edges)[0]
        for a, b in histograms:
            pair = ((zi == a) & (zj == b)) | ((zi == b) & (zj == a))
            histograms[a, b] += np.histogram(d[pair], edges)[0]
    n_frames = len(frames)
    n = len(traj.numbers)
    out: dict[str, np.ndarray] = {}
    for (a, b), hist in histograms.items():
        pairs = counts[a] * counts[b] if a != b else counts[a] * (counts[a] - 1) / 2
        if pairs == 0:
            continue
        out[f"{chemical_symbols[a]}-{chemical_symbols[b]}"] = hist / (
            n_frames * pairs / volume * shell
        )
    out["total"] = total / (n_frames * n * (n - 1) / 2 / volume * shell)
    return centres, out


def rdf_r2(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> dict[str, float]:
    """Coefficient of determination R² of ``other`` against ``reference``, per shared pair."""
    scores = {}
    for key in sorted(set(reference) & set(other)):
        y, f = reference[key], other[key]
        total = float(((y - y.mean()) ** 2).sum())
        scores[key] = 1.0 - float(((y - f) ** 2).sum()) / total if total > 0 else float("nan")
    return scores


def plot_rdfs(r: np.ndarray, rdfs: dict[str, np.ndarray], path):
    """Partial and total g(r) in one figure."""
    from atomlens.plotting import literal, save_figure, subplots

    figure, axis = subplots(figsize=(5, 3.6))
    for name, values in rdfs.items():
        axis.plot(
            r,
            values,
            linewidth=1.6 if name == "total" else 0.9,
            label=name,
            color="black" if name == "total" else None,
        )
    axis.set_xlabel("r (Å)")
    axis.set_ylabel("g(r)")
    literal(axis.legend(fontsize=7).get_texts())
    return save_figure(figure, path)
