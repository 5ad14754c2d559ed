"""Figures of free-energy landscapes, reversal barriers and coercivity (matplotlib Figures)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from atomlens.plotting import colormap, save_figure, subplots
from atomlens.spins.landscape import (
    DEFAULT_SMOOTHING,
    BarrierCurve,
    FreeEnergyCurve,
    barrier_curve,
    smooth_curve,
)


def plot_free_energy_family(
    curve: FreeEnergyCurve,
    fields: Sequence[float],
    path: Path | str,
    *,
    smoothing: int = DEFAULT_SMOOTHING,
    tolerance: float | None = None,
) -> Path:
    """Plot ``F_H(M) = F_0(M) + H M`` for several reversal fields.

    Raw visited bins are dots, the smoothed curve a line; the metastable minimum (circle)
    and the saddle (cross) are marked where resolved. Each curve is shifted so that its
    lowest visited value is zero.

    Args:
        curve: The free-energy curve.
        fields: Reversal fields ``H >= 0``.
        path: Output image (format from the suffix).
        smoothing: Smoothing window in bins.
        tolerance: Extremum cancellation threshold.

    Returns:
        The path written.
    """
    land = smooth_curve(curve, smoothing, tolerance)
    visited = curve.visited
    dense = np.linspace(curve.m[visited][0], curve.m[visited][-1], 1500)
    fig, ax = subplots(figsize=(6.4, 4.4))
    colors = colormap("viridis")(np.linspace(0.0, 0.9, max(len(fields), 1)))
    for h, color in zip(fields, colors, strict=False):
        raw = curve.free_energy + h * curve.saturation_moment * curve.m
        smooth = land.free_energy(dense, h)
        shift = float(np.nanmin(raw))
        ax.plot(curve.m[visited], raw[visited] - shift, ".", ms=2, color=color, alpha=0.5)
        ax.plot(dense, smooth - shift, "-", lw=1.2, color=color, label=f"H = {h:.4g}")
        res = land.barrier(h)
        if math.isfinite(res.m_min):
            ax.plot(res.m_min, res.f_min - shift, "o", mfc="none", color=color, ms=7)
        if res.resolved:
            ax.plot(res.m_saddle, res.f_saddle - shift, "x", color=color, ms=7)
    ax.set_xlabel("M / Ms")
    ax.set_ylabel("F_H(M) - min F_H")
    ax.set_title(f"Free energy in a reversal field, T = {curve.temperature:.4g}")
    ax.plot([], [], "o", mfc="none", color="k", label="metastable minimum")
    ax.plot([], [], "x", color="k", label="saddle")
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, Path(path))


def plot_barrier(
    curves_or_results: Sequence[FreeEnergyCurve | BarrierCurve],
    path: Path | str,
    c: float = 25.0,
    *,
    n_fields: int = 80,
    smoothing: int = DEFAULT_SMOOTHING,
    tolerance: float | None = None,
) -> Path:
    """Plot the barrier ``dF(H)`` per temperature with the ``c T`` criterion lines.

    Args:
        curves_or_results: Free-energy curves (barriers computed on ``n_fields`` fields up to
            the field where ``F_H`` becomes monotonic) or precomputed :class:`BarrierCurve`.
        path: Output image.
        c: Thermal-activation criterion ``dF = c T`` (dashed lines).
        n_fields: Fields per curve when curves are given.
        smoothing: Smoothing window in bins.
        tolerance: Extremum cancellation threshold.

    Returns:
        The path written.
    """
    items: list[BarrierCurve] = []
    for item in curves_or_results:
        if isinstance(item, BarrierCurve):
            items.append(item)
        else:
            land = smooth_curve(item, smoothing, tolerance)
            fields = np.linspace(0.0, land.field_upper_bound(), n_fields)
            items.append(barrier_curve(land, fields))
    items.sort(key=lambda b: b.temperature)
    fig, ax = subplots(figsize=(6.4, 4.4))
    colors = colormap("plasma")(np.linspace(0.0, 0.85, max(len(items), 1)))
    for bc, color in zip(items, colors, strict=False):
        ok = bc.resolved
        ax.plot(bc.fields[ok], bc.barrier[ok], "-", color=color, label=f"T = {bc.temperature:.4g}")
        ax.axhline(c * bc.temperature, ls="--", lw=0.8, color=color)
    ax.set_xlabel("H (reversal field)")
    ax.set_ylabel("barrier dF")
    ax.set_title(f"Reversal barrier; dashed: dF = {c:g} T")
    ax.set_ylim(bottom=0.0)
    if items:
        ax.legend(fontsize=7, loc="best")
    return save_figure(fig, Path(path))


def plot_coercivity(rows: Sequence[Mapping[str, object]], path: Path | str) -> Path:
    """Plot ``H_c(T)`` by both criteria from :func:`~atomlens.spins.landscape.coercivity_table`.

    Args:
        rows: Table rows with ``temperature``, ``hc_spinodal``, ``hc_thermal`` (and ``c``).
        path: Output image.

    Returns:
        The path written.
    """

    def column(key: str) -> np.ndarray:
        vals = [r.get(key) for r in rows]
        return np.array([math.nan if v is None else float(v) for v in vals], dtype=np.float64)

    t = column("temperature")
    order = np.argsort(t)
    t = t[order]
    c = float(rows[0].get("c") or 25.0) if rows else 25.0  # type: ignore[arg-type]
    fig, ax = subplots(figsize=(6.4, 4.4))
    ax.plot(t, column("hc_spinodal")[order], "o-", label="spinodal (barrier vanishes)")
    ax.plot(t, column("hc_thermal")[order], "s-", label=f"thermal activation (dF = {c:g} T)")
    ax.set_xlabel("T")
    ax.set_ylabel("Hc")
    ax.set_title("Coercive field against temperature")
    ax.set_ylim(bottom=0.0)
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, Path(path))
