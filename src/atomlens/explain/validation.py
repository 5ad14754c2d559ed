"""A benchmark of explanations: attribution methods against chemistry baselines.

For each molecule, every attribution method (:mod:`atomlens.explain.attribution`) and every
chemistry baseline (:mod:`atomlens.explain.baselines`) gives each atom an importance: the
magnitude ``|score|`` of a method's score (signed methods count a large negative effect as
important), a baseline's own non-negative score. Five metrics compare them:

- ``spearman_all``: Spearman rank correlation of the importance with the per-atom weight of
  the HOMO or LUMO (:mod:`atomlens.explain.orbitals`; degenerate orbitals averaged), per
  molecule. Ties get average ranks. An importance that is the same for every atom ranks
  nothing and counts as 0 (the expected correlation when its ties are broken at random);
  a molecule whose reference weights are all equal has no value (NaN);
- ``spearman_heavy``: the same over heavy (non-H) atoms only, for molecules with at least
  ``MIN_HEAVY`` of them: does the method pick the right C, N or O?
- ``top1``: 1 when the most important atom carries the largest orbital weight. Atoms within
  ``TOP_RTOL`` (relative) of the largest weight all count as the largest; when several
  atoms tie for the largest importance (within ``TOP_RTOL`` of it), the hit is the share of
  them that carry the largest weight, i.e. the expected hit of a random tie break;
- ``deletion`` and ``insertion``: faithfulness (:func:`atomlens.explain.faithfulness
  .order_curves`, ``atom`` mask). Atoms are removed most important first (deletion) or only
  the most important are kept (insertion), at ``n_fractions`` fractions 0..1 of the atoms;
  the curve is ``|prediction(masked) - prediction(full)|`` divided by the standard
  deviation of the target over the model's training set, and the area is its mean over the
  fractions (trapezoid rule). Larger deletion and smaller insertion areas are better. Atoms
  of equal importance are ordered by a seeded random tie break (one per molecule, shared by
  all methods and baselines).

Random scores are drawn ``random_draws`` times per molecule; each metric of the ``random``
baseline is the mean over the draws. Each metric is averaged over molecules with a
percentile bootstrap interval, and every method is compared with the best baseline of that
metric (largest mean; smallest for ``insertion``) by the paired bootstrap interval of the
mean per-molecule difference (:mod:`atomlens.explain.bootstrap`). The best baseline is
chosen on the same molecules, which favours the baseline.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import ConstantInputWarning, spearmanr
from tqdm.auto import tqdm

from atomlens.errors import DataError, StructureError
from atomlens.explain.attribution import as_graphs, method_of, supported_methods
from atomlens.explain.baselines import BASELINES, BOND_FACTOR, baseline_scores
from atomlens.explain.bootstrap import (
    LEVEL,
    N_RESAMPLES,
    Interval,
    bootstrap_mean,
    paired_difference,
)
from atomlens.explain.faithfulness import curve_area, order_curves
from atomlens.explain.orbitals import (
    DEGENERACY_EV,
    ORBITALS,
    cached_frontier_weights,
    structure_key,
)
from atomlens.files import safe_filename, write_json_atomic
from atomlens.inference import Predictor
from atomlens.structures.io import as_structure
from atomlens.structures.record import Structure, structure_name

METRICS = ("spearman_all", "spearman_heavy", "top1", "deletion", "insertion")
HIGHER_IS_BETTER = {
    "spearman_all": True,
    "spearman_heavy": True,
    "top1": True,
    "deletion": True,
    "insertion": False,
}
METRIC_TITLES = {
    "spearman_all": "Spearman (all atoms)",
    "spearman_heavy": "Spearman (heavy atoms)",
    "top1": "top-1 rate",
    "deletion": "deletion area ↑",
    "insertion": "insertion area ↓",
}
MIN_HEAVY = 3
"""Heavy atoms a molecule needs for ``spearman_heavy``."""
TOP_RTOL = 1e-4
"""Values within this fraction of the largest one tie with it (top-1)."""
SCORE_CACHE_VERSION = 1

OrbitalWeights = Callable[[Structure], np.ndarray]
"""Per-atom weights of the reference orbital of a molecule, (N,)."""


def pyscf_weights(
    reference: str,
    cache_dir: Path,
    *,
    functional: str = "b3lyp",
    basis: str = "6-31g",
    population: str = "lowdin",
) -> OrbitalWeights:
    """Orbital weights from PySCF, cached per molecule in ``cache_dir`` (both orbitals at once).

    Raises:
        ValueError: For a reference other than ``homo`` or ``lumo``.
    """
    if reference not in ORBITALS:
        raise ValueError(f"reference must be one of {ORBITALS}, got {reference!r}")
    settings = {"method": functional, "basis": basis, "population": population}

    def weights(structure: Structure) -> np.ndarray:
        return np.asarray(cached_frontier_weights(structure, cache_dir, **settings)[reference])

    return weights


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either input is constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        return float(spearmanr(a, b).statistic)


def rank_correlation(importance: np.ndarray, weights: np.ndarray) -> float:
    """Spearman of an importance with reference weights: 0 for a constant importance.

    NaN when the weights are constant or there are fewer than two atoms (no reference
    ranking).
    """
    importance, weights = np.asarray(importance), np.asarray(weights)
    if weights.size < 2 or np.ptp(weights) == 0:
        return float("nan")
    if np.ptp(importance) == 0:
        return 0.0
    return spearman(importance, weights)


def top_atoms(values: np.ndarray, rtol: float = TOP_RTOL) -> np.ndarray:
    """Mask of the atoms within ``rtol`` (relative to the largest magnitude) of the largest."""
    values = np.asarray(values, dtype=np.float64)
    return values >= values.max() - rtol * np.abs(values).max()


def top1_hit(importance: np.ndarray, weights: np.ndarray) -> float:
    """Share of the top-importance atoms that carry the largest orbital weight (ties shared)."""
    top = top_atoms(importance)
    return float(np.count_nonzero(top & top_atoms(weights)) / np.count_nonzero(top))


def importance_order(importance: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Atoms from the most to the least important; equal importances ordered by ``tiebreak``."""
    return np.lexsort((np.asarray(tiebreak), -np.asarray(importance)))


def ranking_metrics(rows: np.ndarray, weights: np.ndarray, heavy: np.ndarray) -> dict[str, float]:
    """``spearman_all``, ``spearman_heavy`` and ``top1`` of importance rows, mean over rows."""
    rows = np.atleast_2d(rows)
    enough = np.count_nonzero(heavy) >= MIN_HEAVY
    return {
        "spearman_all": float(np.mean([rank_correlation(r, weights) for r in rows])),
        "spearman_heavy": float(np.mean([rank_correlation(r[heavy], weights[heavy]) for r in rows]))
        if enough
        else float("nan"),
        "top1": float(np.mean([top1_hit(r, weights) for r in rows])),
    }


def model_fingerprint(predictor: Predictor) -> str:
    """A hash of the model's weights, target scaling and graph settings."""
    digest = hashlib.sha256()
    for name, tensor in sorted(predictor.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float64).contiguous().numpy().tobytes())
    extra = [predictor.scaling.mean, predictor.scaling.std, predictor.graph_kind]
    digest.update(json.dumps(extra).encode() + repr(predictor.graph_params).encode())
    return digest.hexdigest()[:16]


def cached_scores(
    predictor: Predictor,
    method: str,
    structures: Sequence[Structure],
    graphs: Sequence[Any],
    cache_dir: Path | None,
    options: Mapping[str, Any],
    progress: bool,
) -> list[np.ndarray]:
    """A method's scores per molecule, reusing those stored for this model and options.

    The file ``<cache_dir>/<method + options>.json`` maps a molecule's
    :func:`~atomlens.explain.orbitals.structure_key` to its scores; only molecules missing
    from it are computed, and it is rewritten atomically with them. ``cache_dir`` belongs
    to one model (see :func:`model_fingerprint`); without it everything is computed.
    """
    attribution = method_of(method)
    taken = {k: options[k] for k in attribution.options if options.get(k) is not None}
    keys = [structure_key(s) for s in structures]
    stored: dict[str, list[float]] = {}
    path = None
    if cache_dir is not None:
        tag = "_".join([method, *(f"{k}{v}" for k, v in sorted(taken.items()))])
        path = Path(cache_dir) / f"{safe_filename(tag)}.json"
        stored = _read_scores(path, method, taken)
    todo = [k for k, key in enumerate(keys) if key not in stored]
    if todo:
        new = attribution(predictor, [graphs[k] for k in todo], **taken, progress=progress)
        stored |= {keys[k]: values.tolist() for k, values in zip(todo, new, strict=True)}
        if path is not None:
            payload = {"version": SCORE_CACHE_VERSION, "method": method, "options": taken}
            write_json_atomic(path, payload | {"scores": stored}, indent=None)
    return [np.asarray(stored[key], dtype=np.float64) for key in keys]


def _read_scores(path: Path, method: str, options: Mapping[str, Any]) -> dict[str, list[float]]:
    """Stored scores of this version, method and options (empty when missing or unreadable)."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(stored, dict)
        or stored.get("version") != SCORE_CACHE_VERSION
        or stored.get("method") != method
        or stored.get("options") != dict(options)
        or not isinstance(stored.get("scores"), dict)
    ):
        return {}
    return stored["scores"]


@dataclass(frozen=True)
class BenchmarkReport:
    """Per-molecule metrics of each attribution method and baseline, and their statistics.

    Attributes:
        reference: ``homo`` or ``lumo``.
        names: Molecules scored (M).
        methods: Attribution methods compared.
        baselines: Baselines compared.
        values: Per metric (:data:`METRICS`), per method or baseline, (M,) values (NaN
            where undefined).
        settings: How the benchmark was made (orbitals, faithfulness, tie handling).
        skipped: Molecules left out, with the reason.
        n_resamples: Bootstrap resamples.
        level: Confidence level of the intervals.
        seed: Seed of the bootstrap (and of the random baseline and tie breaks).
    """

    reference: str
    names: list[str]
    methods: list[str]
    baselines: list[str]
    values: dict[str, dict[str, np.ndarray]]
    settings: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    n_resamples: int = N_RESAMPLES
    level: float = LEVEL
    seed: int = 0

    @property
    def candidates(self) -> list[str]:
        """Methods, then baselines."""
        return [*self.methods, *self.baselines]

    def interval(self, metric: str, candidate: str) -> Interval:
        """Mean of a metric over molecules with its bootstrap interval."""
        return bootstrap_mean(
            self.values[metric][candidate],
            n_resamples=self.n_resamples,
            level=self.level,
            seed=self.seed,
        )

    def best_baseline(self, metric: str) -> str | None:
        """The baseline with the best mean of ``metric`` (None when none is defined)."""
        means = {b: self.interval(metric, b).mean for b in self.baselines}
        defined = {b: m for b, m in means.items() if np.isfinite(m)}
        if not defined:
            return None
        pick = max if HIGHER_IS_BETTER[metric] else min
        return pick(defined, key=defined.__getitem__)

    def comparison(self, metric: str, method: str) -> tuple[str | None, Interval]:
        """Paired difference ``method - best baseline`` of a metric, and that baseline."""
        baseline = self.best_baseline(metric)
        if baseline is None:
            nan = float("nan")
            return None, Interval(nan, nan, nan, 0)
        return baseline, paired_difference(
            self.values[metric][method],
            self.values[metric][baseline],
            n_resamples=self.n_resamples,
            level=self.level,
            seed=self.seed,
        )

    @staticmethod
    def verdict(metric: str, difference: Interval) -> str:
        """``better``, ``worse`` (the interval excludes 0) or ``no difference``."""
        if not difference.excludes_zero:
            return "no difference"
        improves = (difference.mean > 0) == HIGHER_IS_BETTER[metric]
        return "better" if improves else "worse"

    def summary(self) -> dict[str, Any]:
        """Everything as a dict for strict JSON (write with ``write_json_atomic``: NaN → null)."""
        scores = {c: {m: self.interval(m, c).as_dict() for m in METRICS} for c in self.candidates}
        comparisons: dict[str, dict[str, Any]] = {}
        for method in self.methods:
            comparisons[method] = {}
            for metric in METRICS:
                baseline, diff = self.comparison(metric, method)
                comparisons[method][metric] = {
                    "baseline": baseline,
                    "difference": diff.mean,
                    "ci_low": diff.low,
                    "ci_high": diff.high,
                    "n_pairs": diff.n,
                    "excludes_zero": diff.excludes_zero,
                    "verdict": self.verdict(metric, diff),
                }
        return {
            "reference": self.reference,
            "n_molecules": len(self.names),
            "methods": self.methods,
            "baselines": self.baselines,
            "metrics": {m: {"higher_is_better": HIGHER_IS_BETTER[m]} for m in METRICS},
            "best_baseline": {m: self.best_baseline(m) for m in METRICS},
            "bootstrap": {
                "kind": "percentile; paired over molecules for the differences",
                "n_resamples": self.n_resamples,
                "level": self.level,
                "seed": self.seed,
            },
            "settings": self.settings,
            "scores": scores,
            "comparisons": comparisons,
            "skipped": self.skipped,
            "per_molecule": {"names": self.names}
            | {m: {c: self.values[m][c] for c in self.candidates} for m in METRICS},
        }

    def csv_rows(self) -> tuple[list[str], list[list[Any]]]:
        """Header and rows of a long table: one row per method or baseline and metric."""
        header = [
            "reference",
            "name",
            "kind",
            "metric",
            "n",
            "mean",
            "ci_low",
            "ci_high",
            "best_baseline",
            "difference",
            "difference_ci_low",
            "difference_ci_high",
            "verdict",
        ]
        rows = []
        for candidate in self.candidates:
            kind = "method" if candidate in self.methods else "baseline"
            for metric in METRICS:
                value = self.interval(metric, candidate)
                row = [self.reference, candidate, kind, metric, value.n, value.mean]
                row += [value.low, value.high]
                if kind == "method":
                    baseline, diff = self.comparison(metric, candidate)
                    row += [baseline, diff.mean, diff.low, diff.high, self.verdict(metric, diff)]
                else:
                    row += [None] * 5
                rows.append([_cell(v) for v in row])
        return header, rows

    def markdown(self, title: str = "") -> str:
        """Two Markdown tables: means with intervals, and methods minus the best baseline."""
        percent = f"{self.level:.0%}"
        lines = [
            f"{title}{self.reference.upper()} orbital weights, {len(self.names)} molecules; "
            f"mean [{percent} bootstrap CI, B = {self.n_resamples}].",
            "",
            "| | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |",
            "|---|" + "---|" * len(METRICS),
        ]
        for candidate in self.candidates:
            cells = [_format(self.interval(m, candidate)) for m in METRICS]
            name = f"`{candidate}`" if candidate in self.methods else f"{candidate} (baseline)"
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Method minus the best baseline of each metric (paired over molecules), "
            f"[{percent} CI]; **bold**: better, *italic*: worse (the CI excludes 0).",
            "",
            "| | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |",
            "|---|" + "---|" * len(METRICS),
            "| best baseline | " + " | ".join(self.best_baseline(m) or "–" for m in METRICS) + " |",
        ]
        for method in self.methods:
            cells = []
            for metric in METRICS:
                _, diff = self.comparison(metric, method)
                text = _format(diff, signed=True)
                verdict = self.verdict(metric, diff)
                cells.append({"better": f"**{text}**", "worse": f"*{text}*"}.get(verdict, text))
            lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def text_table(self) -> str:
        """Plain text for a terminal: per metric, every mean and each method's difference."""
        lines = []
        for metric in METRICS:
            best = self.best_baseline(metric)
            direction = "higher" if HIGHER_IS_BETTER[metric] else "lower"
            lines.append(
                f"{METRIC_TITLES[metric]} ({direction} is better; best baseline: {best or '-'})"
            )
            for candidate in self.candidates:
                text = f"  {candidate:<21}{_format(self.interval(metric, candidate)):<30}"
                if candidate in self.methods:
                    _, diff = self.comparison(metric, candidate)
                    verdict = self.verdict(metric, diff)
                    text += f"vs best {_format(diff, signed=True):<31} {verdict}"
                lines.append(text.rstrip())
            lines.append("")
        return "\n".join(lines).rstrip()


def _cell(value: Any) -> Any:
    """A CSV value: NaN as an empty cell."""
    if isinstance(value, float) and not np.isfinite(value):
        return ""
    return value


def _format(value: Interval, signed: bool = False) -> str:
    """``0.412 [0.351, 0.470]`` (three significant digits); ``–`` when undefined."""
    if not np.isfinite(value.mean):
        return "–"
    spec = "+#.3g" if signed else "#.3g"
    if not np.isfinite(value.low):
        return f"{value.mean:{spec}}"
    return f"{value.mean:{spec}} [{value.low:#.3g}, {value.high:#.3g}]"


def benchmark_explanations(
    predictor: Predictor,
    structures: Sequence[Any],
    orbital_weights: OrbitalWeights,
    *,
    reference: str,
    methods: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    random_draws: int = 5,
    n_fractions: int = 11,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
    score_cache: Path | None = None,
    settings: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> BenchmarkReport:
    """Score attribution methods and chemistry baselines on molecules.

    Args:
        predictor: A loaded molecule model.
        structures: Molecules (any kind :func:`atomlens.structures.io.as_structure` takes).
        orbital_weights: Per-atom reference weights of a molecule (e.g.
            :func:`pyscf_weights`); a ``StructureError`` from it skips the molecule.
        reference: Name of the reference orbital (``homo`` or ``lumo``), for the report.
        methods: Attribution methods (default: all the model supports).
        options: Method options (``samples``, ``steps``, ``seed`` for Shapley).
        random_draws: Draws of the random baseline per molecule.
        n_fractions: Points of the faithfulness curves, evenly spaced over 0..1.
        n_resamples: Bootstrap resamples.
        level: Confidence level.
        seed: Seed of the random baseline, the tie breaks and the bootstrap.
        score_cache: Folder of stored method scores, one subfolder per model (named by
            :func:`model_fingerprint`; see :func:`cached_scores`).
        settings: Extra settings to record (e.g. the orbital calculation).
        progress: Show progress bars.

    Raises:
        DataError: For periodic structures, an unknown method, one the model cannot run,
            or when no molecule is left.
    """
    if random_draws < 1 or n_fractions < 2:
        raise DataError("need --random-draws >= 1 and at least two faithfulness fractions")
    methods = list(dict.fromkeys(methods)) if methods is not None else supported_methods(predictor)
    for name in methods:
        method_of(name).check(predictor)
    records = [as_structure(s, source=f"input {k}") for k, s in enumerate(structures)]
    periodic = [structure_name(r) for r in records if r.is_periodic]
    if periodic:
        raise DataError(
            f"the benchmark compares with molecular orbitals, molecules only ({periodic[0]} "
            "is periodic)"
        )
    skipped: dict[str, str] = {}
    kept: list[Structure] = []
    weights: list[np.ndarray] = []
    for record in tqdm(records, desc=f"{reference} orbital weights", disable=not progress):
        name = structure_name(record)
        if len(record) < 2:
            skipped[name] = "one atom: nothing to rank or mask"
            continue
        try:
            reference_weights = np.asarray(orbital_weights(record), dtype=np.float64)
        except StructureError as exc:
            skipped[name] = str(exc)
            continue
        if reference_weights.shape != (len(record),):
            raise DataError(
                f"{name}: {reference_weights.shape} orbital weights for {len(record)} atoms"
            )
        weights.append(reference_weights)
        kept.append(record)
    if not kept:
        raise DataError("no molecule left to benchmark: " + "; ".join(skipped.values())[:300])
    graphs = as_graphs(predictor, kept)
    options = dict(options or {})
    importance: dict[str, list[np.ndarray]] = {}
    model_cache = None if score_cache is None else Path(score_cache) / model_fingerprint(predictor)
    for name in methods:
        scores = cached_scores(predictor, name, kept, graphs, model_cache, options, progress)
        importance[name] = [np.abs(s)[None] for s in scores]
    rng = np.random.default_rng(seed)
    per_baseline = [baseline_scores(r, rng, random_draws) for r in kept]
    for name in BASELINES:
        importance[name] = [b[name] for b in per_baseline]
    candidates = [*methods, *BASELINES]

    values = {m: {c: np.full(len(kept), np.nan) for c in candidates} for m in METRICS}
    orders: list[list[np.ndarray]] = []
    for k, record in enumerate(kept):
        heavy = np.asarray(record.numbers) > 1
        tiebreak = rng.random(len(record))
        orders.append([])
        for c in candidates:
            for metric, value in ranking_metrics(importance[c][k], weights[k], heavy).items():
                values[metric][c][k] = value
            orders[k] += [importance_order(row, tiebreak) for row in importance[c][k]]
    fractions = np.linspace(0.0, 1.0, n_fractions)
    deletion, insertion = order_curves(
        predictor, graphs, orders, fractions, mode="atom", progress=progress
    )
    scale = float(predictor.scaling.std)
    start = 0
    for c in candidates:
        rows = len(importance[c][0])
        block = slice(start, start + rows)
        values["deletion"][c] = curve_area(deletion[:, block], fractions).mean(axis=1) / scale
        values["insertion"][c] = curve_area(insertion[:, block], fractions).mean(axis=1) / scale
        start += rows
    recorded = {
        "orbital": dict(settings or {}) | {"degeneracy_ev": DEGENERACY_EV},
        "importance": "|score| of a method; a baseline's own non-negative score",
        "baselines": {
            "heavy_atom": "1 for non-H, 0 for H",
            "atomic_number": "Z",
            "fewest_h": "heavy atoms 1 / (1 + bonded H), H 0",
            "centrality": "closeness centrality on the covalent bond graph (Wasserman-Faust)",
            "random": f"uniform, mean of {random_draws} draws per molecule",
            "bond_factor": BOND_FACTOR,
        },
        "method_options": options,
        "spearman": "per molecule, average ranks for ties; constant importance counts 0",
        "min_heavy_atoms": MIN_HEAVY,
        "top1": "hit share among tied top-importance atoms; ties within relative "
        f"{TOP_RTOL:g} of the largest value",
        "top_rtol": TOP_RTOL,
        "faithfulness": {
            "mask": "atom",
            "n_fractions": n_fractions,
            "area": "mean over fractions 0..1 (trapezoid) of |prediction(masked) - "
            "prediction(full)| / training-set target std",
            "target_std": scale,
            "unit": predictor.unit,
            "ties": "seeded random tie break, one per molecule",
        },
        "model_target": predictor.target,
    }
    return BenchmarkReport(
        reference=reference,
        names=[structure_name(r) for r in kept],
        methods=methods,
        baselines=list(BASELINES),
        values=values,
        settings=recorded,
        skipped=skipped,
        n_resamples=n_resamples,
        level=level,
        seed=seed,
    )
