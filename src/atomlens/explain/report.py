"""``atomlens explain``: every output for a set of structures, in one folder."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from atomlens.errors import DataError
from atomlens.explain import capsules, display, figures, html, tables
from atomlens.explain.attention import Explanation, explain
from atomlens.explain.attribution import default_method, method_of
from atomlens.explain.depiction import Depiction
from atomlens.explain.faithfulness import MaskMode, check_capable, faithfulness
from atomlens.files import (
    safe_filename,
    write_csv,
    write_json_atomic,
    write_text_atomic,
)
from atomlens.inference import Predictor
from atomlens.predict_files import staged_outputs
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
    method: str | None = None,
    method_options: Mapping[str, Any] | None = None,
    references: Sequence[float | None] | None = None,
) -> tuple[list[Explanation], list[Path]]:
    """Explain ``structures`` and write extxyz, CSV, HTML, PNG (and faithfulness) files.

    Args:
        predictor: The trained model.
        structures: Structures to explain.
        out_dir: Output folder (created). Written all or nothing: the files are staged
            inside it and moved into place when all are written; a failure leaves it as it
            was. Outputs of an earlier report that this one does not rewrite (per-structure
            figures, faithfulness and capsule files) are removed on success.
        local: Add per-layer local attention columns.
        structure_figures: Per-structure bar charts for at most this many structures.
        page_limit: The HTML page holds at most this many structures (the tables all).
        faithfulness_mode: If given, also compute deletion/insertion curves with this mask.
        progress: Show progress bars.
        method: Attribution method (:data:`atomlens.explain.attribution.METHODS`); by
            default ``rollout`` where the model has local attention, else ``attention``
            (:func:`atomlens.explain.attribution.default_method`). Other than
            ``attention``, its scores add the column ``atomlens_<method>`` to the extxyz
            file and ``<method>`` to ``atoms.csv``, give the top atom of ``structures.csv``,
            colour the viewer, its 2-D depictions and the figures, and order the atoms of
            the faithfulness curves.
        method_options: Its options (``steps``, ``samples``, ``seed``).
        references: Reference (label) values of the structures, one each (None where
            unknown), e.g. those of a run's split; by default a number under the target's
            name in a structure's info. Gives the error per structure in the viewer and
            ``structures.csv``.

    Returns:
        The explanations (names made distinct, see :func:`distinct_names`) and the files
        written.
    """
    if not structures:
        raise DataError("no structures to explain")
    if faithfulness_mode is not None:  # before the long work, not after it
        check_capable(predictor, faithfulness_mode)
    method = method or default_method(predictor)
    method_of(method).check(predictor)
    options = {"progress": progress} | dict(method_options or {})
    explanations = distinct_names(
        explain(predictor, list(structures), local=local, method=method, options=options)
    )
    labels = display.reference_values(explanations, references)
    with staged_outputs(Path(out_dir), stale=STALE_OUTPUTS) as staging:
        written = _write_all(
            predictor,
            explanations,
            labels,
            staging,
            structure_figures=structure_figures,
            page_limit=page_limit,
            faithfulness_mode=faithfulness_mode,
            progress=progress,
        )
        written = [Path(out_dir) / p.relative_to(staging) for p in written]
    return explanations, written


# Outputs of an earlier report that a new one may not rewrite: removed when it succeeds.
STALE_OUTPUTS = (
    "figures/attention_[0-9][0-9][0-9][0-9]_*.png",
    "faithfulness.json",
    "faithfulness.csv",
    "figures/faithfulness.png",
    "capsules.json",
    "capsules.npz",
    "figures/capsule_*.png",
    "depictions/*.svg",
)


def distinct_names(explanations: list[Explanation]) -> list[Explanation]:
    """The explanations with names made distinct where inputs share a file name or id.

    Structures of files with the same name in different folders are named with the folder:
    ``a/mol.xyz#0`` and ``b/mol.xyz#0`` instead of ``mol.xyz#0`` twice. An id shared by
    several structures gets the file and frame in brackets, and a counter ``(1)``, ``(2)``,
    ... settles what still clashes.
    """
    folders: dict[str, set[Path]] = {}
    for item in explanations:
        if item.structure.source:
            path = Path(item.structure.source).resolve()
            folders.setdefault(path.name, set()).add(path)
    counts = Counter(item.name for item in explanations)
    renamed = []
    for item in explanations:
        name, source, frame = item.name, item.structure.source, item.structure.frame
        if source:
            path = Path(source).resolve()
            short = f"{path.name}#{frame}" if frame is not None else path.name
            where = f"{path.parent.name}/{short}"
            if name == short and len(folders[path.name]) > 1:
                name = where
            elif name != short and counts[name] > 1:
                name = f"{name} ({where})"
        renamed.append(name)
    again = Counter(renamed)
    seen: Counter[str] = Counter()
    result = []
    for item, name in zip(explanations, renamed, strict=True):
        if again[name] > 1:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        result.append(item if name == item.name else dataclasses.replace(item, name=name))
    return result


def write_depictions(
    explanations: Sequence[Explanation], out_dir: Path
) -> tuple[list[Depiction | None], list[Path]]:
    """2-D depictions of the molecules as ``depictions/<k>_<name>.svg`` in ``out_dir``.

    On the colour scales of a page of ``explanations`` (see :func:`html.make_depictions`).

    Returns:
        Each structure's depiction (None for crystals; a note where there is none), with
        its file relative to ``out_dir``, and the files written.
    """
    pictures = html.make_depictions(explanations, display.page_scales(explanations))
    written: list[Path] = []
    for k, (item, picture) in enumerate(zip(explanations, pictures, strict=True)):
        if picture is None or picture.svg is None:
            continue
        name = f"depictions/{k:04d}_{safe_filename(item.name)}.svg"
        written.append(write_text_atomic(out_dir / name, picture.svg))
        pictures[k] = dataclasses.replace(picture, file=name)
    return pictures, written


def _write_all(
    predictor: Predictor,
    explanations: list[Explanation],
    labels: list[float | None],
    out_dir: Path,
    *,
    structure_figures: int,
    page_limit: int,
    faithfulness_mode: MaskMode | None,
    progress: bool,
) -> list[Path]:
    """Write every output of :func:`write_report` into ``out_dir``; returns the files."""
    figure_dir = out_dir / "figures"
    shown = explanations[:page_limit]
    pictures, written = write_depictions(shown, out_dir)
    method = explanations[0].method
    written += [
        tables.write_extxyz(explanations, out_dir / "explanations.extxyz"),
        tables.write_atom_table(explanations, out_dir / "atoms.csv"),
        tables.write_structure_table(explanations, out_dir / "structures.csv", labels),
        html.write_page(
            shown,
            out_dir / "index.html",
            title=f"atomlens: {predictor.target} {method}",
            model=str(predictor.run_dir),
            references=labels[:page_limit],
            depictions=pictures,
        ),
        figures.plot_by_element(explanations, figure_dir / "attention_by_element.png"),
        figures.plot_by_environment(explanations, figure_dir / "attention_by_environment.png"),
    ]
    if capsules.has_capsules(explanations):
        written += capsules.write_capsules(explanations, out_dir)
    for k, item in enumerate(explanations[:structure_figures]):
        name = f"attention_{k:04d}_{safe_filename(item.name)}.png"
        written.append(figures.plot_structure(item, figure_dir / name, reference=labels[k]))
    if faithfulness_mode is not None:
        report = faithfulness(predictor, explanations, mode=faithfulness_mode, progress=progress)
        header, rows = report.per_structure_rows()
        written += [
            write_json_atomic(out_dir / "faithfulness.json", report.summary()),
            write_csv(out_dir / "faithfulness.csv", header, rows),
            figures.plot_faithfulness(report, figure_dir / "faithfulness.png"),
        ]
    return written
