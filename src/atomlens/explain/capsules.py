"""Capsule outputs of SEN per structure, and the crystal-vector separability test.

Written by ``atomlens explain`` when the model gives them:

- ``capsules.json``: per structure its prediction, space group, crystal system, and the
  presence (16), pose (16 x 6, a 2-D affine transform per capsule) and D matrix
  (16 x 6) of its part capsules;
- ``capsules.npz``: the same arrays stacked, with the crystal vectors;
- ``figures/capsule_presence.png``: mean capsule presence per crystal system;
- ``separability.json`` and ``figures/crystal_vectors_pca.png``: k-NN accuracy of the
  crystal system from the crystal vectors, and their 2-D projection.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from atomlens.errors import DataError
from atomlens.explain.attention import Explanation
from atomlens.explain.separability import plot_projection, project_2d, separability
from atomlens.files import atomic_path, write_json_atomic
from atomlens.structures.symmetry import CRYSTAL_SYSTEMS, analyse_symmetry, crystal_system_index


def has_capsules(explanations: Sequence[Explanation]) -> bool:
    """True when the model gave capsule outputs."""
    return bool(explanations) and "capsule_presence" in explanations[0].extras


def space_group_of(item: Explanation) -> int:
    """The structure's space group: from its graph when built with symmetry, else spglib."""
    if item.graph.symmetry is not None:
        return item.graph.symmetry.space_group
    return analyse_symmetry(item.structure).space_group


def write_capsules(explanations: Sequence[Explanation], out_dir: Path) -> list[Path]:
    """Write the capsule files and, for 6 or more crystals, the separability test."""
    groups = np.array([space_group_of(item) for item in explanations])
    stacked = {
        key: np.stack([item.extras[key] for item in explanations])
        for key in ("crystal_vector", "capsule_presence", "capsule_pose", "capsule_matrix")
    }
    systems = crystal_system_index(groups)
    records = []
    for k, item in enumerate(explanations):
        system = CRYSTAL_SYSTEMS[systems[k]] if systems[k] >= 0 else "unknown"
        records.append(
            {
                "name": item.name,
                "formula": item.structure.formula,
                f"predicted_{item.target}": item.value,
                "space_group": int(groups[k]),
                "crystal_system": system,
                "presence": _rounded(stacked["capsule_presence"][k]),
                "pose": _rounded(stacked["capsule_pose"][k]),
                "d_matrix": _rounded(stacked["capsule_matrix"][k]),
            }
        )
    written = [write_json_atomic(out_dir / "capsules.json", records, indent=1)]
    with atomic_path(out_dir / "capsules.npz") as tmp, tmp.open("wb") as handle:
        np.savez_compressed(handle, space_group=groups, **stacked)
    written.append(out_dir / "capsules.npz")
    written.append(
        _plot_presence(
            stacked["capsule_presence"], groups, out_dir / "figures" / "capsule_presence.png"
        )
    )
    try:
        scores = separability(stacked["crystal_vector"], groups)
    except DataError as exc:
        print(f"no separability score: {exc}")
        return written
    written.append(write_json_atomic(out_dir / "separability.json", scores))
    title = (
        f"crystal vectors: k-NN crystal-system accuracy {scores['crystal_system_knn_accuracy']:.2f}"
        f" (chance {scores['crystal_system_chance']:.2f})"
    )
    known = groups > 0
    points = project_2d(stacked["crystal_vector"][known])
    written.append(
        plot_projection(
            points, groups[known], out_dir / "figures" / "crystal_vectors_pca.png", title
        )
    )
    return written


def _rounded(array: np.ndarray) -> list:
    return np.round(np.asarray(array, dtype=np.float64), 5).tolist()


def _plot_presence(presence: np.ndarray, groups: np.ndarray, path: Path) -> Path:
    """Heat map: mean presence of each capsule per crystal system."""
    from atomlens.plotting import save_figure, subplots

    systems = crystal_system_index(groups)
    rows = [s for s in range(len(CRYSTAL_SYSTEMS)) if (systems == s).any()]
    if (systems < 0).any():
        rows.append(-1)
    table = np.array([presence[systems == s].mean(axis=0) for s in rows])
    labels = [CRYSTAL_SYSTEMS[s] if s >= 0 else "unknown" for s in rows]
    counts = [int((systems == s).sum()) for s in rows]
    fig, ax = subplots(figsize=(6.5, 0.45 * len(rows) + 1.4), dpi=120)
    image = ax.imshow(table, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_yticks(
        range(len(rows)), [f"{name} ({n})" for name, n in zip(labels, counts, strict=True)]
    )
    ax.set_xticks(range(presence.shape[1]))
    ax.set_xlabel("part capsule")
    ax.set_title("mean capsule presence by crystal system", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    save_figure(fig, path)
    return path
