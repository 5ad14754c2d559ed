"""Predict for structure files; write extxyz (``atomlens_`` keys) and CSV tables."""

from __future__ import annotations

from pathlib import Path

from atomlens.explain.attention import explain
from atomlens.explain.tables import write_extxyz
from atomlens.files import write_csv
from atomlens.inference import Predictor
from atomlens.structures.io import read_structures


def predict_files(predictor: Predictor, files: list[Path], out_dir: Path) -> list[Path]:
    """Write ``<stem>.atomlens.extxyz`` per input plus ``predictions.csv``/``attention.csv``.

    Returns:
        The files written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    prediction_rows: list[list] = []
    attention_rows: list[list] = []
    for path in files:
        explanations = explain(predictor, list(read_structures(path)))
        written.append(write_extxyz(explanations, out_dir / f"{path.stem}.atomlens.extxyz"))
        for item in explanations:
            top = int(item.attention.argmax())
            frame = item.structure.frame
            prediction_rows.append(
                [
                    str(path),
                    frame,
                    item.structure.formula,
                    len(item.structure),
                    item.value,
                    predictor.unit,
                    f"{item.symbols[top]}{top}",
                ]
            )
            attention_rows.extend(
                [str(path), frame, atom, symbol, float(score), int(rank)]
                for atom, (symbol, score, rank) in enumerate(
                    zip(item.symbols, item.attention, item.rank, strict=True)
                )
            )
    header = ["file", "frame", "formula", "n_atoms", predictor.target, "unit", "most_attended_atom"]
    written.append(write_csv(out_dir / "predictions.csv", header, prediction_rows))
    header = ["file", "frame", "atom", "element", "attention", "rank"]
    written.append(write_csv(out_dir / "attention.csv", header, attention_rows))
    return written
