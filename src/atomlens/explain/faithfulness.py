"""Is the attention faithful? Deletion and insertion curves, computed by re-running the model.

Atoms are masked in the order given by a score: most attended first, random, or least
attended first. Two masks are offered:

- ``atom``: a masked atom is removed from the model's input: it sends no messages and is
  not pooled (the remaining atoms keep their Voronoi faces; nothing is re-tessellated);
- ``readout``: the graph is untouched and the atom is only left out of the global
  attention pooling (its weight goes to 0 and the rest are renormalised).

Deletion masks the first k atoms of the order; insertion keeps only the first k. Both
curves record ``|prediction(masked) - prediction(full)|`` in the target's unit at fractions
of the atoms, and are summarised by their area (the mean change over fractions 0..1). A
faithful attention moves the prediction *more* than random when its top atoms are deleted
(larger deletion area) and recovers it *sooner* when they are inserted (smaller insertion
area).

The ``attention`` order is that of the explanations' scores (``Explanation.scores``): the
attention itself, or the magnitude of another attribution method's scores when the
explanations were made with ``method=...``; the report names it in ``method``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from atomlens.batching import batch_from_graphs
from atomlens.explain.attention import Explanation
from atomlens.graphs.graph import Graph
from atomlens.inference import Predictor
from atomlens.models import require

MaskMode = Literal["atom", "readout"]
ORDERS = ("attention", "random", "least")


@dataclass(frozen=True)
class FaithfulnessReport:
    """Deletion/insertion curves and their areas, per structure and for the data set.

    Attributes:
        mode: The mask used (``atom`` or ``readout``).
        fractions: Fractions of atoms masked (deletion) or kept (insertion), (F,).
        unit: Unit of the prediction changes.
        names: Structures scored (those with at least two atoms).
        deletion: Per order, (S, F) curves of ``|Δ prediction|`` (random: mean of draws).
        insertion: Per order, (S, F) curves.
        skipped: Names of structures with a single atom (nothing to mask).
        method: The attribution method whose scores gave the ``attention`` order.
    """

    mode: str
    fractions: np.ndarray
    unit: str
    names: list[str]
    deletion: dict[str, np.ndarray]
    insertion: dict[str, np.ndarray]
    skipped: list[str] = field(default_factory=list)
    method: str = "attention"

    def areas(self, curve: Literal["deletion", "insertion"]) -> dict[str, np.ndarray]:
        """Area under each structure's curve, per order: (S,) arrays, in ``unit``."""
        curves = self.deletion if curve == "deletion" else self.insertion
        return {k: curve_area(v, self.fractions) for k, v in curves.items()}

    def summary(self) -> dict:
        """Data-set figures: mean areas per order and how often attention beats random."""
        deletion, insertion = self.areas("deletion"), self.areas("insertion")
        return {
            "mode": self.mode,
            "method": self.method,
            "unit": self.unit,
            "n_structures": len(self.names),
            "n_skipped": len(self.skipped),
            "deletion_auc": {k: float(v.mean()) for k, v in deletion.items()},
            "insertion_auc": {k: float(v.mean()) for k, v in insertion.items()},
            "deletion_win_rate_vs_random": float(
                np.mean(deletion["attention"] > deletion["random"])
            ),
            "insertion_win_rate_vs_random": float(
                np.mean(insertion["attention"] < insertion["random"])
            ),
            "deletion_ratio_attention_to_random": _ratio(deletion),
            "insertion_ratio_attention_to_random": _ratio(insertion),
        }

    def per_structure_rows(self) -> tuple[list[str], list[list]]:
        """Header and rows of a per-structure table of areas."""
        deletion, insertion = self.areas("deletion"), self.areas("insertion")
        header = ["structure"] + [f"deletion_auc_{k}" for k in ORDERS]
        header += [f"insertion_auc_{k}" for k in ORDERS]
        rows = [
            [name]
            + [float(deletion[k][s]) for k in ORDERS]
            + [float(insertion[k][s]) for k in ORDERS]
            for s, name in enumerate(self.names)
        ]
        return header, rows


def curve_area(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Area under curves sampled at ``fractions`` (last axis), divided by the fraction span.

    The trapezoid rule; the result is the mean of the curve over the fractions, in its unit.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    return np.trapezoid(curves, fractions, axis=-1) / (fractions[-1] - fractions[0])


def _ratio(areas: dict[str, np.ndarray]) -> float:
    random = float(areas["random"].mean())
    return float(areas["attention"].mean()) / random if random > 0 else float("nan")


def check_capable(predictor: Predictor, mode: str) -> None:
    """Raise a clear error when the model cannot be scored with this mask."""
    if mode not in ("atom", "readout"):
        raise ValueError(f"mode must be 'atom' or 'readout', got {mode!r}")
    require(predictor.config.model, "atom_attention", "faithfulness")
    if mode == "readout":
        require(predictor.config.model, "readout_mask", "faithfulness with the readout mask")


def mask_counts(n_atoms: int, fractions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Atoms deleted (at most n-1) and atoms kept (at least 1) at each fraction."""
    counts = np.rint(fractions * n_atoms).astype(int)
    return np.minimum(counts, n_atoms - 1), np.maximum(counts, 1)


@torch.no_grad()
def _predict_masked(
    predictor: Predictor,
    variants: list[tuple[Graph, np.ndarray]],
    mode: MaskMode,
    batch_size: int,
    progress: bool,
    desc: str = "faithfulness",
) -> np.ndarray:
    """Predictions (physical units) for each (graph, keep mask) variant."""
    out = np.empty(len(variants))
    starts = range(0, len(variants), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress):
        chunk = variants[start : start + batch_size]
        if mode == "atom":
            batch = batch_from_graphs([g.subgraph(keep) for g, keep in chunk])
            output = predictor.model(batch)
        else:
            batch = batch_from_graphs([g for g, _ in chunk])
            mask = torch.from_numpy(np.concatenate([keep for _, keep in chunk]))
            output = predictor.model(batch, readout_mask=mask)
        values = predictor.scaling.to_physical(output["prediction"]).numpy()
        out[start : start + len(chunk)] = values
    return out


def order_curves(
    predictor: Predictor,
    graphs: Sequence[Graph],
    orders: Sequence[Sequence[np.ndarray]],
    fractions: np.ndarray,
    *,
    mode: MaskMode = "atom",
    batch_size: int = 512,
    progress: bool = True,
    desc: str = "faithfulness",
) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves of ``|Δ prediction|`` for given atom orders.

    Args:
        predictor: The model.
        graphs: Structures (two atoms or more), as the model's graphs.
        orders: Per structure, the same number of orders (permutations of its atoms, most
            important first).
        fractions: Fractions of atoms deleted (deletion) or kept (insertion), (F,),
            starting at 0 (the full structure, the reference of both curves).
        mode: ``atom`` or ``readout`` mask.
        batch_size: Masked structures per forward pass.
        progress: Show a progress bar.
        desc: Label of the progress bar.

    Returns:
        Deletion and insertion curves, each (S, O, F), in the target's unit; both are
        measured from the prediction for the full structure.
    """
    if len(graphs) != len(orders) or len({len(o) for o in orders}) > 1:
        raise ValueError("need one list of orders per structure, all of the same length")
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions[0] != 0:
        raise ValueError("the fractions must start at 0 (the full structure)")
    n_orders = len(orders[0]) if orders else 0
    variants: list[tuple[Graph, np.ndarray]] = []
    for graph, per_structure in zip(graphs, orders, strict=True):
        n = graph.num_atoms
        n_deleted, n_kept = mask_counts(n, fractions)
        for order in per_structure:
            for k in n_deleted:
                keep = np.ones(n, dtype=bool)
                keep[order[:k]] = False
                variants.append((graph, keep))
            for k in n_kept:
                keep = np.zeros(n, dtype=bool)
                keep[order[:k]] = True
                variants.append((graph, keep))
    values = _predict_masked(predictor, variants, mode, batch_size, progress, desc).reshape(
        len(graphs), n_orders, 2, len(fractions)
    )
    reference = values[:, :1, 0, :1]  # deletion of nothing: the full structure
    return np.abs(values[:, :, 0] - reference), np.abs(values[:, :, 1] - reference)


def faithfulness(
    predictor: Predictor,
    explanations: Sequence[Explanation],
    *,
    mode: MaskMode = "atom",
    n_fractions: int = 11,
    n_random: int = 5,
    seed: int = 0,
    batch_size: int = 512,
    progress: bool = True,
) -> FaithfulnessReport:
    """Deletion and insertion curves of ``explanations`` under ``predictor``.

    Args:
        predictor: The model that produced the explanations.
        explanations: From :func:`atomlens.explain.attention.explain`.
        mode: ``atom`` (remove atoms from the input) or ``readout`` (from the pooling only).
        n_fractions: Points on each curve, evenly spaced over 0..1.
        n_random: Random orders averaged for the random baseline.
        seed: Seed of the random orders.
        batch_size: Masked structures per forward pass.
        progress: Show a progress bar.
    """
    check_capable(predictor, mode)
    if n_fractions < 2 or n_random < 1:
        raise ValueError("need n_fractions >= 2 and n_random >= 1")
    fractions = np.linspace(0.0, 1.0, n_fractions)
    rng = np.random.default_rng(seed)
    scored = [e for e in explanations if len(e.structure) >= 2]
    skipped = [e.name for e in explanations if len(e.structure) < 2]
    if not scored:
        raise ValueError("faithfulness needs structures with at least two atoms")
    orders = []
    for item in scored:
        n = len(item.structure)
        magnitude = np.abs(np.asarray(item.scores))  # attention, or another method's scores
        orders.append(
            [np.argsort(-magnitude, kind="stable"), np.argsort(magnitude, kind="stable")]
            + [rng.permutation(n) for _ in range(n_random)]
        )
    deletion, insertion = order_curves(
        predictor,
        [item.graph for item in scored],
        orders,
        fractions,
        mode=mode,
        batch_size=batch_size,
        progress=progress,
    )

    def by_order(curves: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "attention": curves[:, 0],
            "random": curves[:, 2:].mean(axis=1),
            "least": curves[:, 1],
        }

    return FaithfulnessReport(
        mode=mode,
        fractions=fractions,
        unit=predictor.unit,
        names=[e.name for e in scored],
        deletion=by_order(deletion),
        insertion=by_order(insertion),
        skipped=skipped,
        method=scored[0].method,
    )
