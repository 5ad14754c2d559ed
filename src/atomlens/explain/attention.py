"""Per-atom explanations of a trained model: prediction, global and local attention.

Besides attention, an explanation may carry the scores of another attribution method
(:mod:`atomlens.explain.attribution`): ``explain(..., method="shapley")``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase.data import chemical_symbols

from atomlens.graphs.graph import Graph
from atomlens.inference import Predictor
from atomlens.models import require
from atomlens.structures.record import Structure, structure_name


@dataclass(frozen=True)
class Explanation:
    """What the model says about one structure, atom by atom.

    Attributes:
        name: Identifier of the structure (its id or ``file#frame``).
        structure: The structure.
        graph: Its Voronoi graph as the model saw it.
        value: The prediction, in ``unit``.
        target: Name of the predicted property.
        unit: Its unit.
        attention: Global attention of each atom (N,), sums to 1.
        local_attention: Optional (L, N): per layer, the local attention each atom
            receives from its neighbours (mean over heads, summed over incoming edges).
        extras: Other per-structure outputs of the model (SEN: ``crystal_vector``,
            ``capsule_presence``, ``capsule_pose``, ``capsule_matrix``).
        method: The attribution method of ``scores`` (a name in
            :data:`atomlens.explain.attribution.METHODS`).
        scores: Per-atom scores of ``method`` (N,); the attention itself when ``method``
            is ``attention`` (the default, filled in when not given).
    """

    name: str
    structure: Structure
    graph: Graph
    value: float
    target: str
    unit: str
    attention: np.ndarray
    local_attention: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    method: str = "attention"
    scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.scores is None:
            if self.method != "attention":
                raise ValueError(f"method {self.method!r} needs its scores")
            object.__setattr__(self, "scores", self.attention)

    @property
    def symbols(self) -> list[str]:
        """Element symbol of each atom."""
        return [chemical_symbols[int(z)] for z in self.structure.numbers]

    @property
    def coordination(self) -> np.ndarray:
        """Number of Voronoi neighbours of each atom (N,)."""
        return self.graph.degree()

    @property
    def rank(self) -> np.ndarray:
        """Rank of each atom by attention, 1 = most attended (N,)."""
        return attention_rank(self.attention)

    def _repr_html_(self) -> str:
        """Jupyter's view: the offline 3-D viewer, atoms coloured and sized by attention.

        It is the page ``atomlens explain`` writes to ``index.html`` (self-contained, no
        network), inside a sandboxed ``srcdoc`` iframe so that its ids, styles and script
        stay apart from the notebook's.
        """
        import html

        from atomlens.explain.html import render_page

        page = render_page([self], title=self.name, model=f"{self.target} ({self.unit})")
        return (
            '<iframe sandbox="allow-scripts" title="atomlens viewer" '
            'style="width: 100%; height: 480px; border: 1px solid #ddd" '
            f'srcdoc="{html.escape(page, quote=True)}"></iframe>'
        )


# Per-structure model outputs kept in an Explanation when the model gives them.
STRUCTURE_OUTPUTS = ("crystal_vector", "capsule_presence", "capsule_pose", "capsule_matrix")


def attention_rank(scores: np.ndarray) -> np.ndarray:
    """Rank of each entry, 1 for the largest; ties keep index order."""
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[np.argsort(-np.asarray(scores), kind="stable")] = np.arange(1, len(scores) + 1)
    return ranks


def received_local_attention(weights: Any, graph_neighbors: np.ndarray, n_atoms: int) -> np.ndarray:
    """Attention each atom receives in one layer: head-mean weights summed per neighbour."""
    per_edge = np.asarray(weights).mean(axis=1)
    return np.bincount(graph_neighbors, weights=per_edge, minlength=n_atoms)


def explain(
    predictor: Predictor,
    structures: list[Any],
    *,
    local: bool = False,
    batch_size: int = 128,
    method: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[Explanation]:
    """Explain the predictions of ``predictor`` for structures.

    Args:
        predictor: A loaded model (see :func:`atomlens.inference.load_model`).
        structures: ase.Atoms, pymatgen or atomlens structures.
        local: Also collect per-layer local attention.
        batch_size: Structures per forward pass.
        method: Attribution method whose scores fill ``Explanation.scores`` (see
            :data:`atomlens.explain.attribution.METHODS`); by default ``rollout`` where
            the model has local attention, else ``attention``
            (:func:`atomlens.explain.attribution.default_method`).
        options: Options of the method (``steps``, ``samples``, ``seed``, ``progress``,
            ``batch_size``); those it does not take are ignored.

    Raises:
        StructureError: Naming the structure whose graph cannot be built.
        DataError: If the model gives no atom attention, or no local attention when asked,
            or lacks a capability the method needs.
    """
    from atomlens.explain.attribution import default_method, method_of

    require(predictor.config.model, "atom_attention", "explain")
    if local:
        require(predictor.config.model, "local_attention", "per-layer local attention (--local)")
    method = method or default_method(predictor)
    attribution = method_of(method)
    attribution.check(predictor)
    results: list[Explanation] = []
    for chunk, graphs, output in predictor.forward(
        structures, batch_size, return_local_attention=local
    ):
        values = output["prediction"].numpy()
        alpha = output["atom_attention"].numpy()
        atom_bounds = np.concatenate([[0], np.cumsum([g.num_atoms for g in graphs])])
        edge_bounds = np.concatenate([[0], np.cumsum([g.num_edges for g in graphs])])
        layers = [w.numpy() for w in output.get("local_attention", [])]
        per_structure = {key: output[key].numpy() for key in STRUCTURE_OUTPUTS if key in output}
        for k, (structure, graph) in enumerate(zip(chunk, graphs, strict=True)):
            local_attention = None
            if local:
                local_attention = np.stack(
                    [
                        received_local_attention(
                            w[edge_bounds[k] : edge_bounds[k + 1]],
                            graph.neighbors,
                            graph.num_atoms,
                        )
                        for w in layers
                    ]
                )
            results.append(
                Explanation(
                    name=structure_name(structure),
                    structure=structure,
                    graph=graph,
                    value=float(values[k]),
                    target=predictor.target,
                    unit=predictor.unit,
                    attention=alpha[atom_bounds[k] : atom_bounds[k + 1]].astype(np.float64),
                    local_attention=local_attention,
                    extras={key: array[k] for key, array in per_structure.items()},
                )
            )
    if method == "attention":
        return results
    scores = attribution(predictor, [item.graph for item in results], **dict(options or {}))
    return [
        dataclasses.replace(item, method=method, scores=values)
        for item, values in zip(results, scores, strict=True)
    ]
