"""Does a model's crystal vector know the crystal system? A computed test and a figure.

The score is the leave-one-out k-nearest-neighbour accuracy of the crystal system predicted
from the standardised crystal vectors, next to the chance level (the share of the largest
class). The figure is a 2-D projection (PCA, or t-SNE with scikit-learn) coloured by system.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from atomlens.batching import iterate_batches
from atomlens.datasets.dataset import GraphDataset
from atomlens.errors import DataError
from atomlens.structures.record import make_structure
from atomlens.structures.symmetry import CRYSTAL_SYSTEMS, analyse_symmetry, crystal_system_index


@torch.no_grad()
def crystal_vectors(
    model: torch.nn.Module, dataset: GraphDataset, indices: np.ndarray, batch_size: int = 128
) -> np.ndarray:
    """The model's ``crystal_vector`` output (B, D) for dataset rows ``indices``, in order."""
    model.eval()
    parts = [
        model(batch)["crystal_vector"].double().numpy()
        for batch in iterate_batches(dataset, indices, batch_size)
    ]
    if not parts:
        raise DataError("no structures to embed")
    return np.concatenate(parts)


def space_groups(dataset: GraphDataset, indices: np.ndarray) -> np.ndarray:
    """Space-group numbers of dataset rows: stored ones, else analysed from the cached atoms."""
    indices = np.asarray(indices, dtype=np.int64)
    if dataset.has_symmetry:
        return np.asarray(dataset.arrays["space_group"][indices], dtype=np.int64)
    groups = []
    for index in indices:
        graph = dataset.graph(int(index))
        structure = make_structure(graph.numbers, graph.positions, graph.cell, graph.pbc)
        groups.append(analyse_symmetry(structure).space_group)
    return np.array(groups, dtype=np.int64)


def knn_accuracy(vectors: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-NN accuracy of ``labels`` from standardised ``vectors``.

    Each point takes the majority label of its k nearest other points; a tie goes to the
    tied label whose member is nearest.
    """
    from scipy.spatial import cKDTree

    vectors = np.asarray(vectors, dtype=np.float64)
    labels = np.asarray(labels)
    if len(vectors) <= k:
        raise DataError(f"k-NN with k={k} needs more than {k} points, got {len(vectors)}")
    std = vectors.std(axis=0)
    scaled = (vectors - vectors.mean(axis=0)) / np.where(std > 0, std, 1.0)
    _, neighbours = cKDTree(scaled).query(scaled, k=k + 1)
    hits = 0
    for point, row in enumerate(neighbours):
        others = [n for n in row if n != point][:k]
        votes: dict[Any, int] = {}
        for n in others:
            votes[labels[n]] = votes.get(labels[n], 0) + 1
        best = max(votes.values())
        winner = next(labels[n] for n in others if votes[labels[n]] == best)
        hits += winner == labels[point]
    return hits / len(vectors)


def separability(vectors: np.ndarray, groups: np.ndarray, k: int = 5) -> dict[str, Any]:
    """k-NN accuracy of crystal system and of space group, with their chance levels."""
    known = groups > 0
    if known.sum() <= k:
        raise DataError("too few structures with a known space group for a separability score")
    vectors, groups = vectors[known], groups[known]
    systems = np.asarray(crystal_system_index(groups))
    result: dict[str, Any] = {"n": int(known.sum()), "k": k}
    for name, labels in (("crystal_system", systems), ("space_group", groups)):
        _, counts = np.unique(labels, return_counts=True)
        result[f"{name}_knn_accuracy"] = knn_accuracy(vectors, labels, k)
        result[f"{name}_chance"] = float(counts.max() / counts.sum())
    present, counts = np.unique(systems, return_counts=True)
    result["systems"] = {CRYSTAL_SYSTEMS[s]: int(c) for s, c in zip(present, counts, strict=True)}
    return result


def project_2d(vectors: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D projection of standardised vectors by PCA (numpy) or t-SNE (scikit-learn)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    std = vectors.std(axis=0)
    scaled = (vectors - vectors.mean(axis=0)) / np.where(std > 0, std, 1.0)
    if method == "pca":
        _, _, components = np.linalg.svd(scaled, full_matrices=False)
        return scaled @ components[:2].T
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            raise DataError("t-SNE needs scikit-learn: pip install scikit-learn") from None
        perplexity = min(30.0, (len(scaled) - 1) / 3)
        return TSNE(2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(scaled)
    raise DataError(f"unknown projection '{method}'; use pca or tsne")


def plot_projection(
    points: np.ndarray, groups: np.ndarray, path: Path, title: str, method: str = "pca"
) -> Path:
    """Scatter of a 2-D projection coloured by crystal system."""
    from atomlens.plotting import LITERAL, colormap, save_figure, subplots

    systems = np.asarray(crystal_system_index(groups))
    fig, ax = subplots(figsize=(5.5, 4.5), dpi=120)
    colours = colormap("tab10")
    for s, name in enumerate(CRYSTAL_SYSTEMS):
        mine = systems == s
        if mine.any():
            ax.scatter(*points[mine].T, s=6, alpha=0.7, color=colours(s), label=name, lw=0)
    label = "PC" if method == "pca" else "t-SNE "
    ax.set_xlabel(f"{label}1")
    ax.set_ylabel(f"{label}2")
    ax.set_title(title, fontsize=9, **LITERAL)
    ax.legend(fontsize=7, markerscale=2, frameon=False)
    fig.tight_layout()
    save_figure(fig, path)
    return path
