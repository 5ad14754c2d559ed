"""PNG figures of attention (matplotlib ``Figure`` objects, no pyplot, no display needed)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers
from ase.data.colors import jmol_colors

from atomlens.explain.attention import Explanation
from atomlens.explain.faithfulness import ORDERS, FaithfulnessReport
from atomlens.plotting import LITERAL, save_figure, subplots

MAX_ENVIRONMENTS = 24


def plot_structure(item: Explanation, path: Path) -> Path:
    """Bars of each atom's attention, coloured by element, with the uniform level dashed."""
    from matplotlib.patches import Rectangle

    n = len(item.structure)
    figure, axis = subplots(figsize=(max(4.0, min(0.28 * n + 2, 16)), 3.2))
    colours = [jmol_colors[z] for z in item.structure.numbers]
    axis.bar(np.arange(n), item.attention, color=colours, edgecolor="0.3", linewidth=0.5)
    axis.axhline(1 / n, color="0.4", linestyle="--", linewidth=1, label="uniform 1/N")
    axis.set_xticks(np.arange(n), [f"{s}{i}" for i, s in enumerate(item.symbols)])
    axis.tick_params(axis="x", labelrotation=90 if n > 12 else 0, labelsize=8)
    axis.set_ylabel("global attention")
    axis.set_title(
        f"{item.name}  {item.structure.formula}  {item.target} = {item.value:.4g} {item.unit}",
        fontsize=9,
        **LITERAL,
    )
    handles = [
        Rectangle((0, 0), 1, 1, color=jmol_colors[atomic_numbers[s]], label=s)
        for s in dict.fromkeys(item.symbols)
    ]
    axis.legend(handles=[*handles, axis.get_lines()[0]], fontsize=8, ncols=2)
    return save_figure(figure, path)


def relative_attention(item: Explanation) -> np.ndarray:
    """Attention times the number of atoms: 1 means 'as much as a uniform share'."""
    return item.attention * len(item.structure)


def _boxplot(groups: dict[str, list[float]], path: Path, xlabel: str, title: str) -> Path:
    labels = list(groups)
    figure, axis = subplots(figsize=(max(4.0, 0.45 * len(labels) + 2), 3.6))
    axis.boxplot([groups[k] for k in labels], showfliers=False)
    axis.set_xticks(np.arange(1, len(labels) + 1), [f"{k}\n({len(groups[k])})" for k in labels])
    axis.tick_params(axis="x", labelsize=7)
    axis.axhline(1.0, color="0.4", linestyle="--", linewidth=1)
    axis.set_ylabel("attention × N (1 = uniform)")
    axis.set_xlabel(xlabel)
    axis.set_title(title, fontsize=9, **LITERAL)
    return save_figure(figure, path)


def plot_by_element(explanations: Sequence[Explanation], path: Path) -> Path:
    """Distribution of relative attention per element over a data set."""
    groups: dict[str, list[float]] = defaultdict(list)
    for item in explanations:
        for symbol, value in zip(item.symbols, relative_attention(item), strict=True):
            groups[symbol].append(float(value))
    ordered = dict(sorted(groups.items(), key=lambda kv: atomic_numbers[kv[0]]))
    return _boxplot(ordered, path, "element (atoms)", "attention per element")


def plot_by_environment(explanations: Sequence[Explanation], path: Path) -> Path:
    """Distribution of relative attention per element and Voronoi coordination number."""
    groups: dict[str, list[float]] = defaultdict(list)
    for item in explanations:
        values = relative_attention(item)
        for symbol, cn, value in zip(item.symbols, item.coordination, values, strict=True):
            groups[f"{symbol}-{cn}"].append(float(value))
    common = sorted(groups.items(), key=lambda kv: -len(kv[1]))[:MAX_ENVIRONMENTS]
    ordered = dict(
        sorted(
            common, key=lambda kv: (atomic_numbers[kv[0].split("-")[0]], int(kv[0].split("-")[1]))
        )
    )
    title = "attention per coordination environment (element-CN)"
    if len(groups) > MAX_ENVIRONMENTS:
        title += f", {MAX_ENVIRONMENTS} most common of {len(groups)}"
    return _boxplot(ordered, path, "environment (atoms)", title)


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
    figure.suptitle(
        f"faithfulness, {report.mode} mask, {len(report.names)} structures", fontsize=10
    )
    return save_figure(figure, path)
