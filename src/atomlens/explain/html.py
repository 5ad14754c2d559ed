"""A self-contained HTML page (no network, no server) showing atoms coloured by attention."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from importlib import resources
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import covalent_radii

from atomlens.explain.attention import Explanation
from atomlens.files import write_text_atomic

BOND_TOLERANCE = 1.2  # a bond is drawn below this multiple of the summed covalent radii
IMAGE_MARGIN = 0.15  # periodic images within this fraction of the cell are drawn


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


def structure_payload(item: Explanation) -> dict[str, Any]:
    """The JSON the viewer draws for one explanation (positions wrapped into the cell)."""
    structure, graph = item.structure, item.graph
    positions = np.asarray(structure.positions, dtype=np.float64)
    wrap = np.zeros((len(structure), 3))
    cell = None
    images: list[list[int]] = []
    if structure.is_periodic:
        cell = np.asarray(structure.cell, dtype=np.float64)
        frac = np.linalg.solve(cell.T, positions.T).T
        wrap = np.where(structure.pbc, np.floor(frac + 1e-9), 0.0)
        frac -= wrap
        positions = frac @ cell
        axes = [(-1, 0, 1) if periodic else (0,) for periodic in structure.pbc]
        for shift in product(*axes):
            if shift == (0, 0, 0):
                continue
            moved = frac + np.array(shift)
            inside = np.all((moved >= -IMAGE_MARGIN) & (moved <= 1 + IMAGE_MARGIN), axis=1)
            images.extend([int(atom), *shift] for atom in np.flatnonzero(inside))
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
    return {
        "name": item.name,
        "formula": structure.formula,
        "target": item.target,
        "unit": item.unit,
        "value": float(item.value),
        "symbols": item.symbols,
        "positions": _rounded(positions),
        "radii": _rounded(radii, 3),
        "attention": _rounded(attention, 6),
        "local": None if item.local_attention is None else _rounded(item.local_attention, 5),
        "rank": item.rank.tolist(),
        "coordination": item.coordination.tolist(),
        "cell": None if cell is None else _rounded(cell),
        "images": images,
        "bonds": bonds,
        "centre": _rounded(centre),
    }


def render_page(explanations: Sequence[Explanation], *, title: str, model: str) -> str:
    """The full HTML page for one or many explanations (an index with search on the left)."""
    if not explanations:
        raise ValueError("no structures to show")
    values = {
        "title": html.escape(title),
        "model": html.escape(model),
        "css": _asset("viewer.css"),
        "js": _asset("viewer.js"),
        "data": script_safe_json({"structures": [structure_payload(e) for e in explanations]}),
    }
    # One pass: text inserted for one marker is never scanned for another.
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], _asset("page.html"))


def write_page(explanations: Sequence[Explanation], path: Path, *, title: str, model: str) -> Path:
    """Write the viewer page atomically; returns its path."""
    return write_text_atomic(path, render_page(explanations, title=title, model=model))
