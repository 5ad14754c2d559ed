"""PNG figures of attention (matplotlib ``Figure`` objects, no pyplot, no display needed).

Explanations made with another attribution method show that method's scores (named on
the axis and in the title): × N around 1 for attention-like methods, as they are, in the
target's unit, around 0 for signed ones (see :mod:`atomlens.explain.display`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers
from ase.data.colors import jmol_colors

from atomlens.explain.attention import Explanation
from atomlens.explain.display import is_relative, method_scores, score_label, shown_scores
from atomlens.explain.faithfulness import ORDERS, FaithfulnessReport
from atomlens.plotting import LITERAL, save_figure, subplots

MAX_ENVIRONMENTS = 24


def plot_structure(item: Explanation, path: Path, reference: float | None = None) -> Path:
    """Bars of each atom's score, coloured by element, with the neutral level dashed.

    The score is the attention (uniform level 1/N) or, for another method, its scores
    (uniform level 1/N for attention-like methods, 0 for signed ones). A known
    ``reference`` value and the error join the title.
    """
    from matplotlib.patches import Rectangle

    n = len(item.structure)
    figure, axis = subplots(figsize=(max(4.0, min(0.28 * n + 2, 16)), 3.2))
    colours = [jmol_colors[z] for z in item.structure.numbers]
    axis.bar(np.arange(n), method_scores(item), color=colours, edgecolor="0.3", linewidth=0.5)
    relative = is_relative(item.method)
    level, label = (1 / n, "uniform 1/N") if relative else (0.0, "zero")
    axis.axhline(level, color="0.4", linestyle="--", linewidth=1, label=label)
    axis.set_xticks(np.arange(n), [f"{s}{i}" for i, s in enumerate(item.symbols)])
    axis.tick_params(axis="x", labelrotation=90 if n > 12 else 0, labelsize=8)
    if item.method == "attention":
        axis.set_ylabel("global attention")
    else:
        axis.set_ylabel(item.method if relative else score_label(item.method, item.unit), **LITERAL)
    title = f"{item.name}  {item.structure.formula}  {item.target} = {item.value:.4g} {item.unit}"
    if reference is not None:
        title += f" (reference {reference:.4g}, error {item.value - reference:+.3g})"
    if item.method != "attention":
        title += f"  [{item.method}]"
    axis.set_title(title, fontsize=9, **LITERAL)
    handles = [
        Rectangle((0, 0), 1, 1, color=jmol_colors[atomic_numbers[s]], label=s)
        for s in dict.fromkeys(item.symbols)
    ]
    axis.legend(handles=[*handles, axis.get_lines()[0]], fontsize=8, ncols=2)
    return save_figure(figure, path)


def relative_attention(item: Explanation) -> np.ndarray:
    """Attention times the number of atoms: 1 means 'as much as a uniform share'."""
    return item.attention * len(item.structure)


def _method_of(explanations: Sequence[Explanation]) -> str:
    methods = {item.method for item in explanations}
    if len(methods) > 1:
        raise ValueError(f"explanations of several methods: {', '.join(sorted(methods))}")
    return methods.pop() if methods else "attention"


def _boxplot(
    groups: dict[str, list[float]], path: Path, xlabel: str, title: str, ylabel: str, level: float
) -> Path:
    labels = list(groups)
    figure, axis = subplots(figsize=(max(4.0, 0.45 * len(labels) + 2), 3.6))
    axis.boxplot([groups[k] for k in labels], showfliers=False)
    axis.set_xticks(np.arange(1, len(labels) + 1), [f"{k}\n({len(groups[k])})" for k in labels])
    axis.tick_params(axis="x", labelsize=7)
    axis.axhline(level, color="0.4", linestyle="--", linewidth=1)
    axis.set_ylabel(ylabel, **LITERAL)
    axis.set_xlabel(xlabel)
    axis.set_title(title, fontsize=9, **LITERAL)
    return save_figure(figure, path)


def _plot_groups(
    explanations: Sequence[Explanation], groups: dict[str, list[float]], path: Path, **text: str
) -> Path:
    method = _method_of(explanations)
    unit = explanations[0].unit if explanations else ""
    level = 1.0 if is_relative(method) else 0.0
    return _boxplot(groups, path, ylabel=score_label(method, unit), level=level, **text)


def plot_by_element(explanations: Sequence[Explanation], path: Path) -> Path:
    """Distribution of the shown scores (attention × N by default) per element."""
    groups: dict[str, list[float]] = defaultdict(list)
    for item in explanations:
        for symbol, value in zip(item.symbols, shown_scores(item), strict=True):
            groups[symbol].append(float(value))
    ordered = dict(sorted(groups.items(), key=lambda kv: atomic_numbers[kv[0]]))
    title = f"{_method_of(explanations)} per element"
    return _plot_groups(explanations, ordered, path, xlabel="element (atoms)", title=title)


def plot_by_environment(explanations: Sequence[Explanation], path: Path) -> Path:
    """Distribution of the shown scores per element and number of Voronoi neighbours."""
    groups: dict[str, list[float]] = defaultdict(list)
    for item in explanations:
        values = shown_scores(item)
        for symbol, cn, value in zip(item.symbols, item.coordination, values, strict=True):
            groups[f"{symbol}-{cn}"].append(float(value))
    common = sorted(groups.items(), key=lambda kv: -len(kv[1]))[:MAX_ENVIRONMENTS]
    ordered = dict(
        sorted(
            common, key=lambda kv: (atomic_numbers[kv[0].split("-")[0]], int(kv[0].split("-")[1]))
        )
    )
    title = f"{_method_of(explanations)} per environment (element-neighbours, Voronoi faces)"
    if len(groups) > MAX_ENVIRONMENTS:
        title += f", {MAX_ENVIRONMENTS} most common of {len(groups)}"
    xlabel = "element-number of Voronoi neighbours (atoms)"
    return _plot_groups(explanations, ordered, path, xlabel=xlabel, title=title)


def plot_faithfulness(report: FaithfulnessReport, path: Path) -> Path:
    """Mean deletion and insertion curves for the three orders."""
    figure, axes = subplots(1, 2, figsize=(9, 3.4), sharey=True)
    styles = {"attention": "-o", "random": "--", "least": ":s"}
    for axis, name, curves in (
        (axes[0], "deletion (mask first k)", report.deletion),
        (axes[1], "insertion (keep first k)", report.insertion),
    ):
        for order in ORDERS:
            axis.plot(
                report.fractions,
                curves[order].mean(axis=0),
                styles[order],
                label=order,
                markersize=3,
            )
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("fraction of atoms")
    axes[0].set_ylabel(f"mean |Δ prediction| ({report.unit or 'target unit'})", **LITERAL)
    axes[0].legend(fontsize=8)
    order = "" if report.method == "attention" else f", 'attention' order from {report.method}"
    figure.suptitle(
        f"faithfulness, {report.mode} mask, {len(report.names)} structures{order}", fontsize=10
    )
    return save_figure(figure, path)
