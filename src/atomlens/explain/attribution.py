"""Per-atom attribution methods beside attention, all behind one interface.

``METHODS[name](predictor, structures_or_graphs, **options)`` returns one per-atom score
array per structure. Methods:

- ``attention``: the model's global attention (one forward pass per structure);
- ``rollout``: attention rollout through the local layers. Per layer, the head-mean local
  attention is an (N, N) row-stochastic matrix A (row i: how atom i weighs its
  neighbours), mixed with the identity as 0.5 I + 0.5 A for the residual path; the layers
  are multiplied, ``R = Ã_L ... Ã_1``, and weighted by the global attention:
  ``score_j = sum_i alpha_i R[i, j]`` (sums to 1). One forward pass;
- ``gradient_input``: gradient of the prediction with respect to each atom's input
  embedding times that embedding, summed over features. One forward and backward pass;
- ``integrated_gradients``: the same along the straight path from a zero embedding, with
  ``steps`` midpoint Riemann steps (``steps`` forward and backward passes). The scores sum
  to ``f(x) - f(zero embedding)`` up to the quadrature error (completeness);
- ``occlusion``: ``f(x) - f(x without atom i)``, the atom removed from the model's input
  with the faithfulness ``atom`` mask (``Graph.subgraph``). N masked forward passes;
- ``shapley``: Shapley values of the atoms, estimated from ``samples`` random permutations
  (seeded). The value of a coalition of atoms is the prediction for the subgraph of those
  atoms (the ``atom`` mask); the empty coalition, which no model can be run on, is given the
  training-set mean of the target (the scaling's mean), the usual SHAP base value. The
  scores sum to ``f(x) - mean`` exactly. At most ``samples × (N - 1)`` masked forward
  passes (coalitions met twice are run once).

Signed methods (gradient, occlusion, Shapley) are in the target's unit: positive raises the
prediction. A one-atom structure has occlusion score ``f(x) - mean`` (removing its atom
leaves the empty coalition). The gradient methods hook the model's per-atom embedding
module (``ModelSpec.atom_embedding``); for SEN it is the structure branch's element
embedding, so the composition branch (its own embedding) is held fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from atomlens.batching import batch_from_graphs
from atomlens.datasets.cache import graphs_of
from atomlens.errors import DataError, StructureError
from atomlens.explain.faithfulness import _predict_masked
from atomlens.graphs.graph import Graph
from atomlens.inference import Predictor
from atomlens.models import require, spec_of
from atomlens.structures.io import as_structure

Scores = list[np.ndarray]


@dataclass(frozen=True)
class AttributionMethod:
    """One attribution method.

    Attributes:
        name: Its name (``--method``).
        function: ``function(predictor, graphs, **options) -> scores``.
        needs: Model capabilities it needs (see :mod:`atomlens.models.registry`).
        options: The options it takes besides ``batch_size`` and ``progress``.
        summary: One line: what the score is.
        cost: Forward passes per structure of N atoms.
    """

    name: str
    function: Callable[..., Scores]
    needs: tuple[str, ...]
    options: tuple[str, ...]
    summary: str
    cost: str

    def check(self, predictor: Predictor) -> None:
        """Raise a one-line DataError when the model lacks a capability this method needs."""
        for capability in self.needs:
            require(predictor.config.model, capability, f"attribution method '{self.name}'")

    def __call__(self, predictor: Predictor, items: Sequence[Any], **options: Any) -> Scores:
        """Per-atom scores of each structure (or graph) in ``items``.

        Options this method does not take (see ``options``) are ignored, so that one call
        site may pass, e.g., ``samples`` and ``steps`` whatever the method.
        """
        self.check(predictor)
        taken = {*self.options, "batch_size", "progress"}
        kwargs = {k: v for k, v in options.items() if k in taken and v is not None}
        return self.function(predictor, as_graphs(predictor, items), **kwargs)


def as_graphs(predictor: Predictor, items: Sequence[Any]) -> list[Graph]:
    """The model's graphs of ``items`` (graphs are passed through, structures built).

    Raises:
        StructureError: Naming a structure whose graph cannot be built or whose elements
            the model never saw.
    """
    items = list(items)
    if all(isinstance(item, Graph) for item in items):
        return items
    records = [as_structure(s, source=f"input {k}") for k, s in enumerate(items)]
    predictor.check_structures(records)
    graphs = graphs_of(records, predictor.graph_kind, predictor.graph_params)
    for graph in graphs:
        if isinstance(graph, StructureError):
            raise graph
    return graphs  # type: ignore[return-value]


def empty_value(predictor: Predictor) -> float:
    """Value of the empty coalition: the training-set mean of the target (physical unit)."""
    return float(predictor.scaling.mean)


def _chunks(graphs: list[Graph], size: int) -> list[list[Graph]]:
    return [graphs[k : k + size] for k in range(0, len(graphs), max(1, size))]


def _split(values: np.ndarray, graphs: list[Graph]) -> Scores:
    bounds = np.concatenate([[0], np.cumsum([g.num_atoms for g in graphs])])
    return [values[bounds[k] : bounds[k + 1]].astype(np.float64).copy() for k in range(len(graphs))]


@torch.no_grad()
def attention_scores(
    predictor: Predictor, graphs: list[Graph], *, batch_size: int = 256, progress: bool = False
) -> Scores:
    """The model's global attention of each atom (sums to 1 per structure)."""
    scores: Scores = []
    for chunk in tqdm(_chunks(graphs, batch_size), desc="attention", disable=not progress):
        output = predictor.model(batch_from_graphs(chunk))
        scores += _split(output["atom_attention"].numpy(), chunk)
    return scores


def _stochastic(
    weights: np.ndarray, centers: np.ndarray, n_atoms: int
) -> tuple[np.ndarray, np.ndarray]:
    """Edge weights normalised per centre, and a flag for atoms with no edge (kept as self)."""
    rows = np.bincount(centers, weights=weights, minlength=n_atoms)
    lone = rows <= 0
    safe = np.where(lone, 1.0, rows)
    return weights / safe[centers], lone


def rollout_matrix(
    layers: Sequence[np.ndarray], centers: np.ndarray, neighbors: np.ndarray, n_atoms: int
) -> np.ndarray:
    """Dense rollout ``R = Ã_L ... Ã_1`` of one structure, rows summing to 1, (N, N).

    Args:
        layers: Per layer, the head-mean local attention of each edge (E,).
        centers: Atom that attends, per edge (E,).
        neighbors: Atom attended to, per edge (E,).
        n_atoms: N.
    """
    eye = np.eye(n_atoms)
    rollout = eye.copy()
    for weights in layers:
        normal, lone = _stochastic(np.asarray(weights, dtype=np.float64), centers, n_atoms)
        matrix = np.zeros((n_atoms, n_atoms))
        np.add.at(matrix, (centers, neighbors), normal)
        matrix[lone, lone] = 1.0
        rollout = (0.5 * eye + 0.5 * matrix) @ rollout
    return rollout


def propagate_rollout(
    alpha: np.ndarray, layers: Sequence[np.ndarray], centers: np.ndarray, neighbors: np.ndarray
) -> np.ndarray:
    """``alpha @ R`` without forming R: O(E) per layer, for a whole batch at once."""
    scores = np.asarray(alpha, dtype=np.float64).copy()
    n_atoms = len(scores)
    for weights in reversed(layers):
        normal, lone = _stochastic(np.asarray(weights, dtype=np.float64), centers, n_atoms)
        mixed = np.bincount(neighbors, weights=scores[centers] * normal, minlength=n_atoms)
        scores = 0.5 * scores + 0.5 * (mixed + scores * lone)
    return scores


@torch.no_grad()
def rollout_scores(
    predictor: Predictor, graphs: list[Graph], *, batch_size: int = 256, progress: bool = False
) -> Scores:
    """Global attention rolled back through the local layers (sums to 1 per structure)."""
    scores: Scores = []
    for chunk in tqdm(_chunks(graphs, batch_size), desc="rollout", disable=not progress):
        batch = batch_from_graphs(chunk)
        output = predictor.model(batch, return_local_attention=True)
        layers = [w.double().mean(dim=1).numpy() for w in output["local_attention"]]
        values = propagate_rollout(
            output["atom_attention"].double().numpy(),
            layers,
            batch.centers.cpu().numpy(),
            batch.neighbors.cpu().numpy(),
        )
        scores += _split(values, chunk)
    return scores


def embedding_pass(
    predictor: Predictor, graphs: list[Graph], scales: np.ndarray, *, gradient: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run the model with each graph's atom embeddings multiplied by a scale.

    Args:
        predictor: The model.
        graphs: Graphs (one may appear several times, e.g. once per integration step).
        scales: One factor per graph (0: zero embedding, 1: the model as it is).
        gradient: Also return gradient x input per atom.

    Returns:
        Predictions in physical units (G,), and per atom (all atoms of ``graphs``, in
        order) the gradient of the prediction with respect to the scaled embedding, dotted
        with the unscaled embedding (None without ``gradient``).
    """
    name = spec_of(predictor.config.model).atom_embedding
    module = predictor.model.get_submodule(name)
    counts = np.array([g.num_atoms for g in graphs])
    atom_scale = torch.from_numpy(np.repeat(np.asarray(scales, dtype=np.float64), counts))
    held: dict[str, torch.Tensor] = {}

    def hook(_module: torch.nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
        embedding = output.detach()
        scale = atom_scale.to(embedding.device, embedding.dtype).unsqueeze(-1)
        scaled = (embedding * scale).requires_grad_(gradient)
        held["embedding"], held["scaled"] = embedding, scaled
        return scaled

    handle = module.register_forward_hook(hook)
    try:
        with torch.set_grad_enabled(gradient):
            output = predictor.model(batch_from_graphs(graphs))
            values = predictor.scaling.to_physical(output["prediction"])
            if "scaled" not in held:
                raise DataError(f"the model never called its atom embedding module '{name}'")
            if not gradient:
                return values.numpy().astype(np.float64), None
            (grad,) = torch.autograd.grad(values.sum(), held["scaled"])
    finally:
        handle.remove()
    per_atom = (grad * held["embedding"]).sum(-1).detach().cpu().double().numpy()
    return values.detach().numpy().astype(np.float64), per_atom


def gradient_input_scores(
    predictor: Predictor, graphs: list[Graph], *, batch_size: int = 256, progress: bool = False
) -> Scores:
    """Gradient x input on the atom embeddings, summed over features (target unit)."""
    scores: Scores = []
    for chunk in tqdm(_chunks(graphs, batch_size), desc="gradient", disable=not progress):
        _, per_atom = embedding_pass(predictor, chunk, np.ones(len(chunk)))
        scores += _split(per_atom, chunk)  # type: ignore[arg-type]
    return scores


def integrated_gradients_scores(
    predictor: Predictor,
    graphs: list[Graph],
    *,
    steps: int = 32,
    batch_size: int = 256,
    progress: bool = False,
) -> Scores:
    """Integrated gradients from a zero embedding, ``steps`` midpoint Riemann steps.

    ``batch_size`` counts graph copies: each structure is run ``steps`` times in a batch.
    """
    if steps < 1:
        raise DataError(f"--steps must be at least 1, got {steps}")
    alphas = (np.arange(steps) + 0.5) / steps
    per_chunk = max(1, batch_size // steps)
    scores: Scores = []
    for chunk in tqdm(
        _chunks(graphs, per_chunk), desc="integrated gradients", disable=not progress
    ):
        copies = [g for g in chunk for _ in range(steps)]
        _, gradients = embedding_pass(predictor, copies, np.tile(alphas, len(chunk)))
        per_atom = np.asarray(gradients)
        start = 0
        for graph in chunk:
            size = steps * graph.num_atoms
            block = per_atom[start : start + size].reshape(steps, graph.num_atoms)
            scores.append(block.mean(axis=0))
            start += size
    return scores


def occlusion_scores(
    predictor: Predictor, graphs: list[Graph], *, batch_size: int = 512, progress: bool = False
) -> Scores:
    """``f(x) - f(x without atom i)``, atoms removed with the ``atom`` mask (target unit)."""
    variants: list[tuple[Graph, np.ndarray]] = []
    for graph in graphs:
        n = graph.num_atoms
        variants.append((graph, np.ones(n, dtype=bool)))
        if n >= 2:
            for atom in range(n):
                keep = np.ones(n, dtype=bool)
                keep[atom] = False
                variants.append((graph, keep))
    values = _predict_masked(predictor, variants, "atom", batch_size, progress, desc="occlusion")
    scores: Scores = []
    start = 0
    for graph in graphs:
        n = graph.num_atoms
        full = values[start]
        if n == 1:
            scores.append(np.array([full - empty_value(predictor)]))
            start += 1
        else:
            scores.append(full - values[start + 1 : start + 1 + n])
            start += 1 + n
    return scores


def shapley_scores(
    predictor: Predictor,
    graphs: list[Graph],
    *,
    samples: int = 64,
    seed: int = 0,
    batch_size: int = 512,
    progress: bool = False,
) -> Scores:
    """Shapley values of the atoms from ``samples`` seeded random permutations (target unit).

    A coalition's value is the prediction for the subgraph of its atoms; the empty
    coalition's is :func:`empty_value`. Each structure's scores sum to ``f(x)`` minus it.
    """
    if samples < 1:
        raise DataError(f"--samples must be at least 1, got {samples}")
    rng = np.random.default_rng(seed)
    scores: Scores = []
    group: list[Graph] = []
    planned = 0
    for graph in graphs:  # groups of structures bound the masked variants held at once
        group.append(graph)
        planned += samples * graph.num_atoms
        if planned >= SHAPLEY_GROUP:
            scores += _shapley_group(predictor, group, samples, rng, batch_size, progress)
            group, planned = [], 0
    if group:
        scores += _shapley_group(predictor, group, samples, rng, batch_size, progress)
    return scores


# Masked variants (subgraph keep masks) planned at once by shapley_scores.
SHAPLEY_GROUP = 65536


def _shapley_group(
    predictor: Predictor,
    graphs: list[Graph],
    samples: int,
    rng: np.random.Generator,
    batch_size: int,
    progress: bool,
) -> Scores:
    """Shapley estimates of a group of structures, their masked subgraphs batched together."""
    variants: list[tuple[Graph, np.ndarray]] = []
    plans: list[tuple[np.ndarray, np.ndarray]] = []
    for graph in graphs:
        n = graph.num_atoms
        seen: dict[bytes, int] = {}

        def position(keep: np.ndarray, graph: Graph = graph, seen: dict = seen) -> int:
            key = keep.tobytes()
            if key not in seen:
                seen[key] = len(variants)
                variants.append((graph, keep.copy()))
            return seen[key]

        full = position(np.ones(n, dtype=bool))
        orders = np.stack([rng.permutation(n) for _ in range(samples)])
        coalitions = np.full((samples, n), full)
        for s, order in enumerate(orders):
            keep = np.zeros(n, dtype=bool)
            for t, atom in enumerate(order[:-1]):
                keep[atom] = True
                coalitions[s, t] = position(keep)
        plans.append((orders, coalitions))
    values = _predict_masked(predictor, variants, "atom", batch_size, progress, desc="shapley")
    base = empty_value(predictor)
    scores: Scores = []
    for orders, coalitions in plans:
        after = values[coalitions]
        before = np.concatenate([np.full((len(after), 1), base), after[:, :-1]], axis=1)
        phi = np.zeros(orders.shape[1])
        np.add.at(phi, orders.ravel(), (after - before).ravel())
        scores.append(phi / samples)
    return scores


METHODS: dict[str, AttributionMethod] = {
    method.name: method
    for method in (
        AttributionMethod(
            "attention",
            attention_scores,
            ("atom_attention",),
            (),
            "the model's global attention",
            "1 forward",
        ),
        AttributionMethod(
            "rollout",
            rollout_scores,
            ("atom_attention", "local_attention"),
            (),
            "global attention rolled back through the local layers",
            "1 forward",
        ),
        AttributionMethod(
            "gradient_input",
            gradient_input_scores,
            (),
            (),
            "gradient x input on the atom embeddings",
            "1 forward + backward",
        ),
        AttributionMethod(
            "integrated_gradients",
            integrated_gradients_scores,
            (),
            ("steps",),
            "integrated gradients from a zero embedding",
            "steps forward + backward",
        ),
        AttributionMethod(
            "occlusion",
            occlusion_scores,
            (),
            (),
            "prediction change when the atom is removed",
            "N + 1 forward",
        ),
        AttributionMethod(
            "shapley",
            shapley_scores,
            (),
            ("samples", "seed"),
            "sampled Shapley value over atoms (atom mask)",
            "at most samples x (N - 1) + 1 forward",
        ),
    )
}


# The default of `explain`: the first of these the model supports. In the explanation
# benchmark (README, "How far to trust the attention"), rollout had the best mean rank over
# the five metrics (Spearman all/heavy atoms, top-1, deletion, insertion) on four QM9
# models (demo and shipped, HOMO and LUMO): rollout 2.25, occlusion 2.65, attention 3.05,
# shapley 3.55, gradient_input 4.55, integrated_gradients 4.95 (1 = best of six).
# Models without local attention (SEN) keep their own attention: they were not benchmarked.
DEFAULT_METHODS = ("rollout", "attention")


def supported_methods(predictor: Predictor) -> list[str]:
    """The attribution methods whose capabilities the model has, in registry order."""
    spec = spec_of(predictor.config.model)
    return [name for name, m in METHODS.items() if all(spec.can(c) for c in m.needs)]


def default_method(predictor: Predictor) -> str:
    """The attribution method ``explain`` uses unless told: rollout where the model allows."""
    supported = supported_methods(predictor)
    for name in DEFAULT_METHODS:
        if name in supported:
            return name
    raise DataError(
        f"model '{spec_of(predictor.config.model).name}' supports none of "
        f"{', '.join(DEFAULT_METHODS)}"
    )


def method_of(name: str) -> AttributionMethod:
    """The registry entry of ``name`` (a clear error for an unknown name)."""
    if name not in METHODS:
        raise DataError(f"unknown attribution method '{name}'; choose from {', '.join(METHODS)}")
    return METHODS[name]


def attribute(predictor: Predictor, items: Sequence[Any], method: str, **options: Any) -> Scores:
    """Per-atom scores of ``method`` for each structure or graph in ``items``.

    Args:
        predictor: A loaded model.
        items: Structures (any kind :func:`atomlens.structures.io.as_structure` takes) or
            the model's graphs.
        method: A name in :data:`METHODS`.
        **options: ``batch_size``, ``progress``, ``steps`` (integrated gradients),
            ``samples`` and ``seed`` (Shapley); options the method does not take are ignored.

    Raises:
        DataError: For an unknown method, or a model without a capability it needs.
    """
    return method_of(method)(predictor, items, **options)
