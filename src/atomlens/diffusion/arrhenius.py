"""Arrhenius fits: ln D = ln D0 - Ea / (kB T), with errors and extrapolation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atomlens.errors import DataError
from atomlens.units import KB_EV


@dataclass(frozen=True)
class ArrheniusFit:
    """Activation energy (eV) and prefactor (cm²/s) with standard errors."""

    activation_energy: float
    activation_energy_std: float
    prefactor: float
    prefactor_log_std: float
    temperatures: np.ndarray
    diffusivities: np.ndarray
    covariance: np.ndarray

    def extrapolate(self, temperature: float) -> tuple[float, float]:
        """D at ``temperature`` (cm²/s) and the standard error of ln D there."""
        x = np.array([1.0, -1.0 / (KB_EV * temperature)])  # d lnD / d(lnD0, Ea)
        ln_d = np.log(self.prefactor) - self.activation_energy / (KB_EV * temperature)
        return float(np.exp(ln_d)), float(np.sqrt(x @ self.covariance @ x))

    def summary(self, extrapolate_to: float | None = None) -> dict:
        """Plain numbers for JSON."""
        out = {
            "activation_energy_eV": self.activation_energy,
            "activation_energy_std_eV": self.activation_energy_std,
            "prefactor_cm2_s": self.prefactor,
            "ln_prefactor_std": self.prefactor_log_std,
            "temperatures_K": self.temperatures.tolist(),
            "diffusivities_cm2_s": self.diffusivities.tolist(),
        }
        if extrapolate_to:
            d, err = self.extrapolate(extrapolate_to)
            out |= {
                "extrapolated_T_K": extrapolate_to,
                "extrapolated_D_cm2_s": d,
                "extrapolated_lnD_std": err,
            }
        return out


def fit_arrhenius(
    temperatures: np.ndarray, diffusivities: np.ndarray, errors: np.ndarray | None = None
) -> ArrheniusFit:
    """Weighted least squares of ln D on 1/(kB T).

    Args:
        temperatures: K.
        diffusivities: cm²/s (positive).
        errors: Optional standard errors of D (weights 1/sigma_lnD²).

    Raises:
        DataError: For fewer than two temperatures or non-positive values.
    """
    t = np.asarray(temperatures, dtype=np.float64)
    d = np.asarray(diffusivities, dtype=np.float64)
    if t.size < 2 or np.unique(t).size < 2:
        raise DataError("an Arrhenius fit needs at least two different temperatures")
    if np.any(t <= 0) or np.any(~np.isfinite(d)) or np.any(d <= 0):
        raise DataError("temperatures and diffusivities must be positive and finite")
    design = np.column_stack([np.ones_like(t), -1.0 / (KB_EV * t)])
    y = np.log(d)
    if errors is not None and np.all(np.isfinite(errors)) and np.all(np.asarray(errors) > 0):
        weights = (d / np.asarray(errors, dtype=np.float64)) ** 2  # sigma_lnD = sigma_D / D
    else:
        weights = np.ones_like(t)
    w = np.sqrt(weights)
    solution, *_ = np.linalg.lstsq(design * w[:, None], y * w, rcond=None)
    residual = y - design @ solution
    dof = max(t.size - 2, 1)
    scale = float(residual**2 @ weights) / dof if errors is None or t.size > 2 else 1.0
    covariance = np.linalg.inv(design.T @ (design * weights[:, None])) * scale
    return ArrheniusFit(
        float(solution[1]),
        float(np.sqrt(covariance[1, 1])),
        float(np.exp(solution[0])),
        float(np.sqrt(covariance[0, 0])),
        t,
        d,
        covariance,
    )


def plot_arrhenius(fit: ArrheniusFit, path: Path, extrapolate_to: float | None = None) -> Path:
    """Ln D against 1000/T with the fitted line (and the extrapolation, if asked)."""
    from atomlens.plotting import pyplot, save_figure

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(4.8, 3.6))
    axis.semilogy(1000 / fit.temperatures, fit.diffusivities, "o", label="MD")
    t_low = min(fit.temperatures.min(), extrapolate_to or np.inf)
    t = np.linspace(t_low, fit.temperatures.max(), 50)
    axis.semilogy(
        1000 / t,
        fit.prefactor * np.exp(-fit.activation_energy / (KB_EV * t)),
        "--",
        label=f"Ea = {fit.activation_energy:.3f} ± {fit.activation_energy_std:.3f} eV",
    )
    axis.set_xlabel("1000 / T (1/K)")
    axis.set_ylabel("D (cm²/s)")
    axis.legend(fontsize=8)
    return save_figure(figure, path)
