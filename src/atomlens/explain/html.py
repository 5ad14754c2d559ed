"""A self-contained HTML page (no network, no server) showing atoms coloured by score.

Atoms are drawn in their element's (Jmol) colour with a halo in the diverging colour of
their score (see :mod:`atomlens.explain.display`); molecules get their 2-D depiction
beside the 3-D view (:mod:`atomlens.explain.depiction`). Periodic images within a margin
of the cell and the image atoms that bonds lead to are computed by the page's script.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import atomic_numbers, covalent_radii
from ase.data.colors import jmol_colors

from atomlens.explain import depiction, display
from atomlens.explain.attention import Explanation
from atomlens.explain.depiction import Depiction
from atomlens.explain.display import ColourScale
from atomlens.files import write_text_atomic

BOND_TOLERANCE = 1.2  # a bond is drawn below this multiple of the summed covalent radii


def _asset(name: str) -> str:
    return (resources.files("atomlens.explain") / "viewer" / name).read_text(encoding="utf-8")


def script_safe_json(payload: Any) -> str:
    """JSON that can sit inside a ``<script>`` element: ``<``, ``>``, ``&`` are escaped.

    No user text (a structure name such as ``</script><script>...``) can end the element.
    """
    text = json.dumps(payload, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _rounded(values: np.ndarray, digits: int = 4) -> list:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def _significant(values: Any, digits: int = 5) -> list:
    """Values rounded to ``digits`` significant digits (small signed scores keep theirs)."""
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=np.float64).ravel()]


def structure_payload(
    item: Explanation, *, reference: float | None = None, depiction: Depiction | None = None
) -> dict[str, Any]:
    """The JSON the viewer draws for one explanation (positions wrapped into the cell).

    Args:
        item: The explanation.
        reference: The structure's reference (label) value, if known.
        depiction: Its 2-D depiction (molecules), or the note saying why there is none.
    """
    structure, graph = item.structure, item.graph
    positions = np.asarray(structure.positions, dtype=np.float64)
    wrap = np.zeros((len(structure), 3))
    cell = frac = None
    if structure.is_periodic:
        cell = np.asarray(structure.cell, dtype=np.float64)
        frac = np.linalg.solve(cell.T, positions.T).T
        wrap = np.where(structure.pbc, np.floor(frac + 1e-9), 0.0)
        frac -= wrap
        positions = frac @ cell
        centre = cell.sum(axis=0) / 2
    else:
        centre = positions.mean(axis=0)

    radii = covalent_radii[structure.numbers]
    shifts = graph.shifts + wrap[graph.neighbors] - wrap[graph.centers]
    bonded = graph.distance < BOND_TOLERANCE * (radii[graph.centers] + radii[graph.neighbors])
    # Each bond once: i < j, or a self-image bond with its shift in canonical direction.
    forward = (graph.centers < graph.neighbors) | (
        (graph.centers == graph.neighbors) & (np.sign(shifts) @ np.array([9, 3, 1]) > 0)
    )
    keep = np.flatnonzero(bonded & forward)
    bonds = [
        [int(graph.centers[e]), int(graph.neighbors[e]), *map(int, np.rint(shifts[e]))]
        for e in keep
    ]
    attention = np.asarray(item.attention, dtype=np.float64)
    symbols = item.symbols
    elements = {
        s: [round(255 * float(c)) for c in jmol_colors[atomic_numbers[s]]] for s in set(symbols)
    }
    error = None if reference is None else float(item.value) - reference
    return {
        "name": item.name,
        "formula": structure.formula,
        "target": item.target,
        "unit": item.unit,
        "value": float(item.value),
        "reference": reference,
        "error": error,
        "method": item.method,
        "symbols": symbols,
        "elements": elements,
        "positions": _rounded(positions),
        "radii": _rounded(radii, 3),
        "attention": _rounded(attention, 6),
        "scores": None if item.method == "attention" else _significant(item.scores),
        "local": None if item.local_attention is None else _rounded(item.local_attention, 5),
        "coordination": item.coordination.tolist(),
        "cell": None if cell is None else _rounded(cell),
        "fractional": None if frac is None else _rounded(frac, 5),
        "pbc": [bool(p) for p in structure.pbc],
        "bonds": bonds,
        "centre": _rounded(centre),
        "depiction": None if depiction is None else _depiction_payload(depiction),
    }


def _depiction_payload(depiction: Depiction) -> dict[str, Any]:
    return {"svg": depiction.svg, "note": depiction.note, "file": depiction.file}


def make_depictions(
    explanations: Sequence[Explanation], scales: dict[str, ColourScale]
) -> list[Depiction | None]:
    """2-D depictions of the molecules (None for crystals), on the page's scales.

    Without RDKit each molecule gets a note saying how to get depictions instead (and the
    hint is printed once, see :func:`atomlens.explain.depiction.hint_once`).
    """
    molecules = [not e.structure.is_periodic for e in explanations]
    if not any(molecules):
        return [None] * len(explanations)
    if not depiction.have_rdkit():
        depiction.hint_once()
        missing = Depiction(None, depiction.RDKIT_HINT)
        return [missing if m else None for m in molecules]
    return [
        depiction.depict(e, scales[e.method]) if m else None
        for e, m in zip(explanations, molecules, strict=True)
    ]


def page_data(
    explanations: Sequence[Explanation],
    *,
    references: Sequence[float | None] | None = None,
    depictions: Sequence[Depiction | None] | None = None,
) -> dict[str, Any]:
    """Everything the viewer reads: structures, colour scales and the diverging palette.

    Args:
        explanations: The structures to show.
        references: Their reference values (see :func:`display.reference_values`).
        depictions: Their 2-D depictions (see :func:`make_depictions`, which is called
            when None).
    """
    scales = display.page_scales(explanations)
    if depictions is None:
        depictions = make_depictions(explanations, scales)
    labels = display.reference_values(explanations, references)
    return {
        "palette": [list(c) for c in display.DIVERGING],
        "uniformSpread": display.UNIFORM_SPREAD,
        "scales": {key: scale.to_json() for key, scale in scales.items()},
        "structures": [
            structure_payload(item, reference=label, depiction=picture)
            for item, label, picture in zip(explanations, labels, depictions, strict=True)
        ],
    }


def render_page(
    explanations: Sequence[Explanation],
    *,
    title: str,
    model: str,
    references: Sequence[float | None] | None = None,
    depictions: Sequence[Depiction | None] | None = None,
) -> str:
    """The full HTML page for one or many explanations (an index with search on the left).

    ``references`` and ``depictions`` are as in :func:`page_data`.
    """
    if not explanations:
        raise ValueError("no structures to show")
    data = page_data(explanations, references=references, depictions=depictions)
    values = {
        "title": html.escape(title),
        "model": html.escape(model),
        "css": _asset("viewer.css"),
        "js": _asset("viewer.js"),
        "data": script_safe_json(data),
    }
    # One pass: text inserted for one marker is never scanned for another.
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], _asset("page.html"))


def write_page(
    explanations: Sequence[Explanation],
    path: Path,
    *,
    title: str,
    model: str,
    references: Sequence[float | None] | None = None,
    depictions: Sequence[Depiction | None] | None = None,
) -> Path:
    """Write the viewer page atomically; returns its path (arguments as :func:`render_page`)."""
    page = render_page(
        explanations, title=title, model=model, references=references, depictions=depictions
    )
    return write_text_atomic(path, page)
