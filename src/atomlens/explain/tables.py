"""Explanations as files: extxyz with per-atom columns, CSV tables of atoms and structures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from atomlens.explain import display
from atomlens.explain.attention import Explanation
from atomlens.files import atomic_path, write_csv
from atomlens.structures.io import to_ase

ATTENTION_COLUMN = "atomlens_attention"


def write_extxyz(explanations: Sequence[Explanation], path: Path) -> Path:
    """Write all structures to one extxyz file with attention columns (OVITO / ASE gui).

    Per atom: ``atomlens_attention``, ``atomlens_attention_rank``, ``atomlens_coordination``
    and, when collected, ``atomlens_local_attention_<layer>``; explanations made with
    another attribution method add its scores as ``atomlens_<method>``. Per frame: the prediction as
    ``atomlens_<target>``, its unit (if any) as ``atomlens_<target>_unit`` and the name as
    ``atomlens_name``. The input's own info and per-atom arrays (forces, tags, ...) are kept.
    """
    import ase.io

    frames = []
    for item in explanations:
        atoms = to_ase(item.structure)
        atoms.info[f"atomlens_{item.target}"] = item.value
        if item.unit:  # an empty extxyz value would not parse
            atoms.info[f"atomlens_{item.target}_unit"] = item.unit
        atoms.info["atomlens_name"] = item.name
        atoms.arrays[ATTENTION_COLUMN] = item.attention
        atoms.arrays["atomlens_attention_rank"] = item.rank
        atoms.arrays["atomlens_coordination"] = item.coordination
        if item.local_attention is not None:
            for layer, values in enumerate(item.local_attention, start=1):
                atoms.arrays[f"atomlens_local_attention_{layer}"] = values
        if item.method != "attention":
            atoms.arrays[f"atomlens_{item.method}"] = np.asarray(item.scores, dtype=np.float64)
        frames.append(atoms)
    with atomic_path(path) as tmp:
        ase.io.write(tmp, frames, format="extxyz")
    return path


def write_atom_table(explanations: Sequence[Explanation], path: Path) -> Path:
    """CSV, one row per atom: structure, atom index, element, attention, rank, coordination.

    Then the local attention per layer when collected, and a last column named after the
    attribution method with its scores when the explanations were made with another one.
    """
    n_layers = max(
        (len(e.local_attention) for e in explanations if e.local_attention is not None), default=0
    )
    header = ["structure", "atom", "element", "attention", "rank", "coordination"]
    header += [f"local_attention_{layer}" for layer in range(1, n_layers + 1)]
    methods = sorted({e.method for e in explanations} - {"attention"})
    header += methods
    rows = []
    for item in explanations:
        columns = [item.symbols, item.attention, item.rank, item.coordination]
        local = item.local_attention if item.local_attention is not None else []
        for atom in range(len(item.structure)):
            row = [item.name, atom, columns[0][atom], float(columns[1][atom])]
            row += [int(columns[2][atom]), int(columns[3][atom])]
            row += [float(layer[atom]) for layer in local]
            if n_layers and not len(local):
                row += [""] * n_layers
            row += [float(item.scores[atom]) if m == item.method else "" for m in methods]
            rows.append(row)
    return write_csv(path, header, rows)


def write_structure_table(
    explanations: Sequence[Explanation],
    path: Path,
    references: Sequence[float | None] | None = None,
) -> Path:
    """CSV, one row per structure: name, formula, atoms, prediction and most attended atom.

    Then the reference value and the error (prediction - reference) where a reference is
    known (see :func:`atomlens.explain.display.reference_values`; empty cells otherwise),
    the attribution method and its top atom (largest score; by magnitude for signed
    methods) with that score.
    """
    labels = display.reference_values(explanations, references)
    header = [
        "structure",
        "source",
        "frame",
        "formula",
        "n_atoms",
        "prediction",
        "unit",
        "target",
        "most_attended_atom",
        "max_attention",
        "reference",
        "error",
        "method",
        "top_atom",
        "top_score",
    ]
    rows = []
    for item, label in zip(explanations, labels, strict=True):
        top = int(item.attention.argmax())
        best = display.top_atom(item)
        rows.append(
            [
                item.name,
                item.structure.source,
                item.structure.frame,
                item.structure.formula,
                len(item.structure),
                item.value,
                item.unit,
                item.target,
                f"{item.symbols[top]}{top}",
                float(item.attention[top]),
                "" if label is None else label,
                "" if label is None else item.value - label,
                item.method,
                f"{item.symbols[best]}{best}",
                float(display.method_scores(item)[best]),
            ]
        )
    return write_csv(path, header, rows)
