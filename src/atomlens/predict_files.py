"""Predict for structure files; write extxyz (``atomlens_`` keys) and CSV tables."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from ase.data import chemical_symbols

from atomlens.inference import Predictor
from atomlens.structures.io import read_structures, to_ase


def predict_files(predictor: Predictor, files: list[Path], out_dir: Path) -> list[Path]:
    """Write ``<stem>.atomlens.extxyz`` per input plus ``predictions.csv``/``attention.csv``.

    Returns:
        The files written.
    """
    import ase.io

    out_dir.mkdir(parents=True, exist_ok=True)
    key = f"atomlens_{predictor.target}"
    written: list[Path] = []
    prediction_rows: list[list] = []
    attention_rows: list[list] = []
    for path in files:
        structures = list(read_structures(path))
        results = predictor.predict(structures)
        frames = []
        for structure, result in zip(structures, results, strict=True):
            atoms = to_ase(structure)
            atoms.info[key] = result.value
            atoms.arrays["atomlens_attention"] = result.atom_attention
            frames.append(atoms)
            ranks = np.empty(len(structure), dtype=int)
            ranks[np.argsort(-result.atom_attention)] = np.arange(1, len(structure) + 1)
            top = result.top_atoms(1)[0]
            prediction_rows.append(
                [
                    str(path),
                    structure.frame,
                    structure.formula,
                    len(structure),
                    result.value,
                    predictor.unit,
                    f"{chemical_symbols[top[1]]}{top[0]}",
                ]
            )
            attention_rows.extend(
                [str(path), structure.frame, i, chemical_symbols[z], float(a), int(r)]
                for i, (z, a, r) in enumerate(
                    zip(structure.numbers, result.atom_attention, ranks, strict=True)
                )
            )
        target = out_dir / f"{path.stem}.atomlens.extxyz"
        ase.io.write(target, frames, format="extxyz")
        written.append(target)
    written.append(
        _write_csv(
            out_dir / "predictions.csv",
            ["file", "frame", "formula", "n_atoms", predictor.target, "unit", "most_attended_atom"],
            prediction_rows,
        )
    )
    written.append(
        _write_csv(
            out_dir / "attention.csv",
            ["file", "frame", "atom", "element", "attention", "rank"],
            attention_rows,
        )
    )
    return written


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path
