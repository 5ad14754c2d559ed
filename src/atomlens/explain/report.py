"""``atomlens explain``: every output for a set of structures, in one folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from atomlens.errors import DataError
from atomlens.explain import capsules, figures, html, tables
from atomlens.explain.attention import Explanation, explain
from atomlens.explain.faithfulness import MaskMode, check_capable, faithfulness
from atomlens.files import safe_filename, write_csv, write_json_atomic
from atomlens.inference import Predictor
from atomlens.structures.record import Structure


def write_report(
    predictor: Predictor,
    structures: Sequence[Structure],
    out_dir: Path,
    *,
    local: bool = False,
    structure_figures: int = 50,
    page_limit: int = 2000,
    faithfulness_mode: MaskMode | None = None,
    progress: bool = True,
) -> tuple[list[Explanation], list[Path]]:
    """Explain ``structures`` and write extxyz, CSV, HTML, PNG (and faithfulness) files.

    Args:
        predictor: The trained model.
        structures: Structures to explain.
        out_dir: Output folder (created).
        local: Add per-layer local attention columns.
        structure_figures: Per-structure bar charts for at most this many structures.
        page_limit: The HTML page holds at most this many structures (the tables all).
        faithfulness_mode: If given, also compute deletion/insertion curves with this mask.
        progress: Show progress bars.

    Returns:
        The explanations and the files written.
    """
    if not structures:
        raise DataError("no structures to explain")
    if faithfulness_mode is not None:  # before the long work, not after it
        check_capable(predictor, faithfulness_mode)
    explanations = explain(predictor, list(structures), local=local)
    out_dir.mkdir(parents=True, exist_ok=True)
    figure_dir = out_dir / "figures"
    written = [
        tables.write_extxyz(explanations, out_dir / "explanations.extxyz"),
        tables.write_atom_table(explanations, out_dir / "atoms.csv"),
        tables.write_structure_table(explanations, out_dir / "structures.csv"),
        html.write_page(
            explanations[:page_limit],
            out_dir / "index.html",
            title=f"atomlens: {predictor.target} attention",
            model=str(predictor.run_dir),
        ),
        figures.plot_by_element(explanations, figure_dir / "attention_by_element.png"),
        figures.plot_by_environment(explanations, figure_dir / "attention_by_environment.png"),
    ]
    if capsules.has_capsules(explanations):
        written += capsules.write_capsules(explanations, out_dir)
    for k, item in enumerate(explanations[:structure_figures]):
        name = f"attention_{k:04d}_{safe_filename(item.name)}.png"
        written.append(figures.plot_structure(item, figure_dir / name))
    if faithfulness_mode is not None:
        report = faithfulness(predictor, explanations, mode=faithfulness_mode, progress=progress)
        header, rows = report.per_structure_rows()
        written += [
            write_json_atomic(out_dir / "faithfulness.json", report.summary()),
            write_csv(out_dir / "faithfulness.csv", header, rows),
            figures.plot_faithfulness(report, figure_dir / "faithfulness.png"),
        ]
    return explanations, written
