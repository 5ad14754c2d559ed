"""Does attention follow the physics? Rank correlation with frontier-orbital weights.

For each molecule, the Spearman correlation between the model's per-atom attention and the
per-atom weight of the HOMO (or LUMO) from a first-principles calculation, next to the same
correlation for baseline scores that know nothing about the model:

- ``random``: random scores (mean over draws; expected 0);
- ``centrality``: closeness to the molecule's centroid (uniform scores have no ranking,
  so this is the "every atom alike, except for where it sits" baseline);
- ``heavy_atom``: 1 for non-hydrogen atoms, 0 for hydrogen.

Hydrogens carry little of a frontier orbital, so the heavy-atom baseline is strong. The
correlation over heavy atoms only (``spearman_heavy``, molecules with three or more) asks
the harder question: does attention pick the right carbon, nitrogen or oxygen?

The orbital weights are averaged over (near-)degenerate orbitals, those within
``DEGENERACY_EV`` of the HOMO or LUMO (see :mod:`atomlens.explain.orbitals`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import ConstantInputWarning, spearmanr
from tqdm.auto import tqdm

from atomlens.explain.attention import Explanation
from atomlens.explain.orbitals import DEGENERACY_EV, ORBITALS, cached_frontier_weights

BASELINES = ("random", "centrality", "heavy_atom")
RANDOM_DRAWS = 20


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either input is constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        return float(spearmanr(a, b).statistic)


def baseline_scores(item: Explanation, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Model-free per-atom scores for one molecule (random: RANDOM_DRAWS rows)."""
    positions = np.asarray(item.structure.positions)
    n = len(positions)
    return {
        "random": rng.random((RANDOM_DRAWS, n)),
        "centrality": -np.linalg.norm(positions - positions.mean(axis=0), axis=1),
        "heavy_atom": (np.asarray(item.structure.numbers) > 1).astype(float),
    }


@dataclass(frozen=True)
class ValidationReport:
    """Per-molecule correlations of attention and baselines with orbital weights.

    Attributes:
        reference: ``homo`` or ``lumo``.
        names: Molecules compared.
        correlations: Per score (``attention`` and each baseline), (M,) Spearman values.
        heavy_correlations: The same over heavy atoms only (NaN below three heavy atoms).
        top1: Per score, (M,) whether its top atom is the orbital's top atom.
        settings: Method, basis and population of the reference calculation.
    """

    reference: str
    names: list[str]
    correlations: dict[str, np.ndarray]
    heavy_correlations: dict[str, np.ndarray]
    top1: dict[str, np.ndarray]
    settings: dict[str, str]

    def summary(self) -> dict:
        """Mean (and standard error) of each score's Spearman correlation and top-1 rate.

        Undefined values (no molecule with a defined correlation) are NaN; write the summary
        with :func:`atomlens.files.write_json_atomic`, which makes them null.
        """
        out: dict = {
            "reference": self.reference,
            "n_molecules": len(self.names),
            **self.settings,
            "degeneracy_ev": DEGENERACY_EV,
        }
        for name, values in self.correlations.items():
            finite = values[np.isfinite(values)]
            heavy = self.heavy_correlations[name]
            heavy = heavy[np.isfinite(heavy)]
            out[name] = {
                "spearman_mean": float(finite.mean()) if finite.size else float("nan"),
                "spearman_sem": float(finite.std(ddof=1) / np.sqrt(finite.size))
                if finite.size > 1
                else float("nan"),
                "spearman_median": float(np.median(finite)) if finite.size else float("nan"),
                "n_defined": int(finite.size),
                "spearman_heavy_mean": float(heavy.mean()) if heavy.size else float("nan"),
                "spearman_heavy_sem": float(heavy.std(ddof=1) / np.sqrt(heavy.size))
                if heavy.size > 1
                else float("nan"),
                "n_heavy_defined": int(heavy.size),
                "top1_rate": float(np.mean(self.top1[name])),
            }
        return out


def validate_attention(
    explanations: Sequence[Explanation],
    reference: str,
    cache_dir: Path,
    *,
    method: str = "b3lyp",
    basis: str = "6-31g",
    population: str = "lowdin",
    seed: int = 0,
    progress: bool = True,
) -> ValidationReport:
    """Compare attention with HOMO/LUMO atom weights, molecule by molecule.

    Orbital weights are cached per molecule in ``cache_dir``; an interrupted run resumes.
    """
    if reference not in ORBITALS:
        raise ValueError(f"reference must be one of {ORBITALS}, got {reference!r}")
    if not explanations:
        raise ValueError("no molecules to compare")
    rng = np.random.default_rng(seed)
    settings = {"method": method, "basis": basis, "population": population}
    scores = ("attention", *BASELINES)
    correlations: dict[str, list[float]] = {k: [] for k in scores}
    heavy_correlations: dict[str, list[float]] = {k: [] for k in scores}
    top1: dict[str, list[float]] = {k: [] for k in scores}
    for item in tqdm(explanations, desc=f"{method}/{basis} {reference}", disable=not progress):
        weights = cached_frontier_weights(item.structure, cache_dir, **settings)[reference]
        top = int(np.argmax(weights))
        candidates = {"attention": item.attention[None, :], **baseline_scores(item, rng)}
        heavy = np.asarray(item.structure.numbers) > 1
        for name in scores:
            rows = np.atleast_2d(candidates[name])
            correlations[name].append(float(np.mean([spearman(r, weights) for r in rows])))
            heavy_correlations[name].append(
                float(np.mean([spearman(r[heavy], weights[heavy]) for r in rows]))
                if heavy.sum() >= 3
                else float("nan")
            )
            # A tie at the top shares the hit among the tied atoms.
            hits = [(r == r.max())[top] / np.count_nonzero(r == r.max()) for r in rows]
            top1[name].append(float(np.mean(hits)))
    return ValidationReport(
        reference=reference,
        names=[e.name for e in explanations],
        correlations={k: np.asarray(v) for k, v in correlations.items()},
        heavy_correlations={k: np.asarray(v) for k, v in heavy_correlations.items()},
        top1={k: np.asarray(v) for k, v in top1.items()},
        settings=settings,
    )
