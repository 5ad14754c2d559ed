"""Arrhenius fits: ln D = ln D0 - Ea / (kB T), with errors and extrapolation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atomlens.errors import DataError
from atomlens.files import to_strict_json
from atomlens.units import KB_EV


@dataclass(frozen=True)
class ArrheniusFit:
    """Activation energy (eV) and prefactor (cm²/s) with standard errors.

    Attributes:
        activation_energy: Ea in eV; ``activation_energy_std`` its standard error.
        prefactor: D0 in cm²/s; ``prefactor_log_std`` the standard error of ln D0.
        temperatures: K. diffusivities: cm²/s.
        covariance: Covariance of (ln D0, Ea), the one the errors above come from.
        error_source: ``"input errors"`` (from the D errors; scaled up by ``scale`` when
            chi2/dof > 1, never down) or ``"scatter"`` (no D errors: residual scatter).
        chi2: Weighted chi-square of the residuals (NaN without input errors).
        dof: Degrees of freedom, points - 2.
        scale: Factor applied to the input-error standard errors, sqrt(max(1, chi2/dof)).
        activation_energy_std_input: Ea error from the input errors alone (NaN without).
        activation_energy_std_scatter: Ea error from the residual scatter alone, with
            ``dof`` degrees of freedom (NaN for two points).
    """

    activation_energy: float
    activation_energy_std: float
    prefactor: float
    prefactor_log_std: float
    temperatures: np.ndarray
    diffusivities: np.ndarray
    covariance: np.ndarray
    error_source: str = "scatter"
    chi2: float = float("nan")
    dof: int = 0
    scale: float = 1.0
    activation_energy_std_input: float = float("nan")
    activation_energy_std_scatter: float = float("nan")

    @property
    def interval_quantile(self) -> float:
        """Multiple of a standard error that gives a 95 % interval.

        1.96 when the errors come from the input D errors; Student's t(0.975, dof) when
        they come from the scatter of a few points (12.7 for three temperatures).
        """
        from scipy import stats

        if self.error_source == "input errors":
            return float(stats.norm.ppf(0.975))
        return float(stats.t.ppf(0.975, self.dof)) if self.dof > 0 else float("nan")

    def extrapolate(self, temperature: float) -> tuple[float, float]:
        """D at ``temperature`` (cm²/s) and the standard error of ln D there."""
        x = np.array([1.0, -1.0 / (KB_EV * temperature)])  # d lnD / d(lnD0, Ea)
        ln_d = np.log(self.prefactor) - self.activation_energy / (KB_EV * temperature)
        return float(np.exp(ln_d)), float(np.sqrt(x @ self.covariance @ x))

    def summary(self, extrapolate_to: float | None = None) -> dict:
        """Plain numbers for strict JSON (a missing error is None)."""
        quantile = self.interval_quantile
        out = {
            "activation_energy_eV": self.activation_energy,
            "activation_energy_std_eV": self.activation_energy_std,
            "activation_energy_95_eV": [
                self.activation_energy - quantile * self.activation_energy_std,
                self.activation_energy + quantile * self.activation_energy_std,
            ],
            "error_source": self.error_source,
            "chi2": self.chi2,
            "dof": self.dof,
            "error_scale": self.scale,
            "activation_energy_std_input_eV": self.activation_energy_std_input,
            "activation_energy_std_scatter_eV": self.activation_energy_std_scatter,
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
                "extrapolated_D_factor": float(np.exp(err)),
            }
        return to_strict_json(out)


def format_factor(ln_std: float) -> str:
    """A multiplicative error exp(sigma_lnD) that never prints as a bare 1.

    Below 2 it keeps two significant digits of the excess over 1.

    >>> format_factor(0.004), format_factor(0.26), format_factor(2.0)
    ('1.0040', '1.30', '7.39')
    """
    factor = float(np.exp(ln_std))
    if not np.isfinite(factor):
        return "nan"
    excess = factor - 1.0
    if factor >= 2.0 or excess <= 0.0:
        return f"{factor:.3g}" if factor >= 2.0 else f"{factor:.3f}"
    decimals = max(2, int(np.ceil(-np.log10(excess))) + 1)
    return f"{factor:.{decimals}f}"


def fit_arrhenius(
    temperatures: np.ndarray, diffusivities: np.ndarray, errors: np.ndarray | None = None
) -> ArrheniusFit:
    """Weighted least squares of ln D on 1/(kB T).

    With errors, the standard errors come from them (sigma_lnD = sigma_D / D) and are
    scaled up by sqrt(chi2/dof) only when the points scatter more than their errors say
    (never down: with three temperatures chi2 has one degree of freedom and would shrink
    them at random). Without errors they come from the residual scatter, with points - 2
    degrees of freedom (none for two points: NaN).

    Args:
        temperatures: K.
        diffusivities: cm²/s (positive).
        errors: Optional standard errors of D (weights 1/sigma_lnD²); ignored unless all
            are finite and positive.

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
    weighted = (
        errors is not None
        and np.shape(errors) == t.shape
        and bool(np.all(np.isfinite(errors)))
        and bool(np.all(np.asarray(errors) > 0))
    )
    weights = (d / np.asarray(errors, dtype=np.float64)) ** 2 if weighted else np.ones_like(t)
    w = np.sqrt(weights)
    solution, *_ = np.linalg.lstsq(design * w[:, None], y * w, rcond=None)
    residual = y - design @ solution
    dof = t.size - 2
    chi2 = float(residual**2 @ weights)
    unscaled = np.linalg.inv(design.T @ (design * weights[:, None]))
    # Residual-scatter covariance (s^2 (X^T W X)^-1); undefined with no degrees of freedom.
    scatter = unscaled * (chi2 / dof) if dof > 0 else np.full((2, 2), np.nan)
    if weighted:
        scale = float(np.sqrt(max(1.0, chi2 / dof))) if dof > 0 else 1.0
        covariance = unscaled * scale**2
        std_input = float(np.sqrt(unscaled[1, 1]))
        source = "input errors"
    else:
        scale, covariance, std_input, source = 1.0, scatter, float("nan"), "scatter"
    return ArrheniusFit(
        float(solution[1]),
        float(np.sqrt(covariance[1, 1])),
        float(np.exp(solution[0])),
        float(np.sqrt(covariance[0, 0])),
        t,
        d,
        covariance,
        source,
        chi2 if weighted else float("nan"),
        dof,
        scale,
        std_input,
        float(np.sqrt(scatter[1, 1])),
    )


def plot_arrhenius(fit: ArrheniusFit, path: Path, extrapolate_to: float | None = None) -> Path:
    """Ln D against 1000/T with the fitted line (and the extrapolation, if asked)."""
    from atomlens.plotting import save_figure, subplots

    figure, axis = subplots(figsize=(4.8, 3.6))
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
