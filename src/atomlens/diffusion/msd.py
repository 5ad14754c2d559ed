"""Mean squared displacement and tracer diffusivity from MD trajectories.

Positions are unwrapped from the periodic cell (jumps of more than half a cell between
frames are undone), the drift of the framework (all other atoms) is removed, and the MSD
is averaged over every time origin with FFTs: O(T log T) per atom and axis instead of
O(T^2). D is the slope of MSD(t) / 6 (per axis: / 2) over a window in the diffusive regime.

The least-squares slope is linear in the MSD, so the reported D is exactly the mean of the
per-ion D_i, each fitted on that ion's own all-origin MSD over the same window. Its standard
error is the spread of the D_i over sqrt(N): it describes the reported estimator (same
window, same origins, every correlation along one ion's path included) and assumes only
that the ions move independently of one another, as kinisi's MSD covariance model does.
Correlated (collective) hopping would make it too small. D over consecutive blocks of the
run is kept as a stationarity check; it no longer sets the error (fitted on a fifth of the
lags, the mean of five blocks is a different and less noisy estimator than the full-run D,
so its spread made error bars ~1.7x too small).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atomlens.errors import DataError
from atomlens.files import to_strict_json
from atomlens.units import E_CHARGE, KB_SI


@dataclass(frozen=True)
class Trajectory:
    """Frames of one MD run.

    Attributes:
        positions: Cartesian positions (T, N, 3) in Å, as stored (wrapped or not).
        cell: Cell vectors as rows (3, 3) in Å (constant cell).
        numbers: Atomic numbers (N,).
        timestep_fs: Time between stored frames in fs.
        source: Where it came from (for messages).
    """

    positions: np.ndarray
    cell: np.ndarray
    numbers: np.ndarray
    timestep_fs: float
    source: str = "trajectory"

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.positions.shape[0])


def read_trajectory(path: Path | str, timestep_fs: float, step: int = 1) -> Trajectory:
    """Read any trajectory ASE reads (extxyz, .traj, XDATCAR, vasprun.xml).

    Args:
        path: The file.
        timestep_fs: Time between the frames stored in the file, in fs.
        step: Keep every ``step``-th frame.

    Raises:
        DataError: For unreadable files, fewer than 3 frames, changing atoms or cells.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise DataError(f"'{path}': no such file")
    if timestep_fs <= 0:
        raise DataError(f"the timestep must be positive, got {timestep_fs} fs")
    try:
        frames = ase.io.read(path, index=f"::{step}")
    except Exception as exc:  # ASE raises many kinds for malformed files
        raise DataError(f"cannot read trajectory '{path}': {exc}") from None
    frames = frames if isinstance(frames, list) else [frames]
    if len(frames) < 3:
        raise DataError(f"'{path}' has {len(frames)} frame(s); diffusion needs at least 3")
    numbers = frames[0].numbers
    for k, atoms in enumerate(frames):
        if len(atoms) != len(numbers) or np.any(atoms.numbers != numbers):
            raise DataError(f"'{path}' frame {k * step}: the atoms differ from frame 0")
        if not np.allclose(atoms.cell.array, frames[0].cell.array, atol=1e-6):
            raise DataError(
                f"'{path}' frame {k * step}: the cell changes; only constant-cell (NVT) runs "
                "are supported"
            )
    positions = np.stack([a.positions for a in frames])
    if not np.all(np.isfinite(positions)):
        raise DataError(f"'{path}': non-finite coordinates")
    cell = frames[0].cell.array
    if abs(np.linalg.det(cell)) < 1e-6:
        raise DataError(f"'{path}': diffusion needs a periodic cell with a volume")
    return Trajectory(positions, cell, numbers.copy(), timestep_fs * step, str(path))


def unwrap(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Undo jumps across periodic boundaries (moves of over half a cell between frames)."""
    frac = positions @ np.linalg.inv(cell)
    steps = np.diff(frac, axis=0)
    steps -= np.round(steps)
    unwrapped = np.concatenate([frac[:1], frac[:1] + np.cumsum(steps, axis=0)])
    return unwrapped @ cell


def msd_fft(x: np.ndarray) -> np.ndarray:
    """MSD over all time origins for each column of ``x`` (T, ...) -> (T, ...), by FFT.

    MSD(m) = 1/(T-m) sum_k |x(k+m) - x(k)|^2, computed as S1(m) - 2 S2(m) where S2 is
    the autocorrelation (Calandrini et al., nMoldyn).
    """
    from scipy import fft

    n = x.shape[0]
    shape = x.shape[1:]
    series = np.ascontiguousarray(x.reshape(n, -1).T)  # (columns, T): FFT along contiguous rows
    size = fft.next_fast_len(2 * n, real=True)
    spectrum = fft.rfft(series, n=size, axis=-1, workers=-1)
    power = spectrum.real**2 + spectrum.imag**2
    lags = np.arange(n)
    autocorr = fft.irfft(power, n=size, axis=-1, workers=-1)[:, :n] / (n - lags)
    squares = series**2
    total = 2.0 * squares.sum(axis=-1, keepdims=True)
    head = np.concatenate([np.zeros((series.shape[0], 1)), np.cumsum(squares, axis=-1)], axis=-1)
    # sum_{k=0}^{n-m-1} x(k)^2 + x(k+m)^2 = total - head[m] - (head[n] - head[n-m])
    s1 = (total - head[:, lags] - (head[:, n : n + 1] - head[:, n - lags])) / (n - lags)
    return (s1 - 2.0 * autocorr).T.reshape(n, *shape)


@dataclass
class DiffusionResult:
    """Tracer diffusivity of one species.

    Attributes:
        species: Element symbol.
        temperature: K.
        time_ps: Lag times (T,) in ps.
        msd: MSD (T,) in Å², averaged over the species' atoms; ``msd_axes`` per axis (T, 3).
        fit_range_ps: The window the slope was fitted on.
        diffusivity: D in cm²/s; ``diffusivity_std`` its standard error (spread of the
            per-ion D over sqrt(N ions); NaN for one ion).
        diffusivity_axes: Per-axis D (3,) in cm²/s.
        conductivity: Nernst-Einstein conductivity in S/cm (charge ``charge`` e per ion).
        block_diffusivities: D of each consecutive block of the run (stationarity check).
        diffusivity_axes_std: Standard errors of the per-axis D (3,), as for D.
        error_dof: Degrees of freedom of the error (ions - 1); with few ions, a 95 %
            interval is D ± t(0.975, dof) sigma rather than ± 2 sigma.
    """

    species: str
    temperature: float
    time_ps: np.ndarray
    msd: np.ndarray
    msd_axes: np.ndarray
    fit_range_ps: tuple[float, float]
    diffusivity: float
    diffusivity_std: float
    diffusivity_axes: np.ndarray
    conductivity: float
    block_diffusivities: list[float] = field(default_factory=list)
    diffusivity_axes_std: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    error_dof: int = 0

    def summary(self) -> dict:
        """Plain numbers for strict JSON (a missing error is None)."""
        out = {
            "species": self.species,
            "temperature_K": self.temperature,
            "diffusivity_cm2_s": self.diffusivity,
            "diffusivity_std_cm2_s": self.diffusivity_std,
            "diffusivity_std_method": ERROR_METHOD,
            "diffusivity_std_dof": self.error_dof,
            "diffusivity_axes_cm2_s": self.diffusivity_axes.tolist(),
            "diffusivity_axes_std_cm2_s": self.diffusivity_axes_std.tolist(),
            "conductivity_S_cm": self.conductivity,
            "fit_range_ps": list(self.fit_range_ps),
            "block_diffusivities_cm2_s": self.block_diffusivities,
        }
        return to_strict_json(out)


A2_PER_PS_TO_CM2_PER_S = 1e-16 / 1e-12  # Å²/ps -> cm²/s
ERROR_METHOD = "standard error of the mean of per-ion D (same window), ions independent"


def mobile_positions(traj: Trajectory, species: str, remove_drift: bool = True) -> np.ndarray:
    """Unwrapped positions (T, n, 3) of one species, the framework's drift subtracted."""
    from ase.data import atomic_numbers

    if species not in atomic_numbers:
        raise DataError(f"unknown element {species!r}")
    mobile = traj.numbers == atomic_numbers[species]
    if not mobile.any():
        raise DataError(f"'{traj.source}' has no {species} atoms")
    positions = unwrap(traj.positions, traj.cell)
    if remove_drift and (~mobile).any():
        drift = positions[:, ~mobile].mean(axis=1, keepdims=True)
        positions = positions - (drift - drift[:1])
    return positions[:, mobile]


def species_msd(traj: Trajectory, species: str, remove_drift: bool = True) -> np.ndarray:
    """Per-axis MSD (T, 3) of one species, framework drift removed, over all origins."""
    return msd_fft(mobile_positions(traj, species, remove_drift)).mean(axis=1)


def auto_window(time_ps: np.ndarray, msd: np.ndarray, skip_ps: float) -> tuple[int, int]:
    """A fit window (first, stop) of lag indices in the diffusive regime.

    It starts after ``skip_ps`` and after the ballistic part (from where the local log-log
    slope stays within 0.3 of 1) and ends at a fifth of the run (longer lags average few
    independent origins and dominate the noise). On short, noisy runs where that leaves
    less than half of the range, it skips the first quarter of the range instead.
    """
    n = len(time_ps)
    end = max(n // 5, 3)
    start = max(int(np.searchsorted(time_ps, skip_ps)), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.gradient(np.log(msd[1:]), np.log(time_ps[1:]))
    fallback = start + (end - start) // 4
    for k in range(start, end - 2):
        if np.all(np.abs(slope[k - 1 : end - 1] - 1.0) < 0.3):
            return (k, end) if end - k >= (end - start) // 2 else (fallback, end)
    return fallback, end


def _slope(t: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(t, y, 1)[0])


def _slopes(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of every column of ``y`` (len(t), ...) against ``t``."""
    centred = t - t.mean()
    return np.tensordot(centred, y - y.mean(axis=0), axes=(0, 0)) / float(centred @ centred)


def _standard_error(values: np.ndarray) -> np.ndarray:
    """Standard error of the mean along axis 0 (NaN for fewer than two values)."""
    if values.shape[0] < 2:
        return np.full(values.shape[1:], np.nan)
    return values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])


def diffusivity(
    traj: Trajectory,
    species: str,
    temperature: float,
    *,
    fit_range_ps: tuple[float, float] | None = None,
    skip_ps: float = 0.0,
    blocks: int = 5,
    charge: float = 1.0,
    remove_drift: bool = True,
) -> DiffusionResult:
    """Tracer D of ``species`` from a trajectory, with its standard error.

    D is the mean of the per-ion D_i (each the slope of that ion's all-origin MSD over the
    window); its error is the standard error of that mean, std(D_i) / sqrt(N).

    Args:
        traj: The trajectory.
        species: Element symbol of the diffusing atoms (e.g. ``Li``).
        temperature: Temperature in K (for the conductivity).
        fit_range_ps: Fit window (start, end) in ps; default: chosen automatically.
        skip_ps: With the automatic window, ignore lags shorter than this.
        blocks: Consecutive blocks for the per-block D, a stationarity check (0 or 1: none).
        charge: Ion charge in e for Nernst-Einstein.
        remove_drift: Subtract the framework's centre-of-mass drift.
    """
    positions = mobile_positions(traj, species, remove_drift)
    per_ion = msd_fft(positions)  # (T, n, 3)
    axes = per_ion.mean(axis=1)
    total = axes.sum(axis=1)
    time_ps = np.arange(traj.n_frames) * traj.timestep_fs / 1000.0
    if fit_range_ps is None:
        lo, hi = auto_window(time_ps, total, skip_ps)
    else:
        lo, hi = (int(np.searchsorted(time_ps, v)) for v in fit_range_ps)
        hi = min(hi, len(time_ps))
    if hi - lo < 3:
        last = time_ps[min(hi, len(time_ps) - 1)]
        raise DataError(
            f"'{traj.source}': the fit window {time_ps[lo]:.3g}-{last:.3g} ps holds fewer "
            "than 3 lags; give --fit-range or a longer run"
        )
    window = slice(lo, hi)
    # Per-ion, per-axis slopes (n, 3); their means are the slopes of the averaged MSD.
    ion_slopes = _slopes(time_ps[window], per_ion[window]) * A2_PER_PS_TO_CM2_PER_S
    ion_d = ion_slopes.sum(axis=1) / 6.0
    ion_d_axes = ion_slopes / 2.0
    d = float(ion_d.mean())
    d_axes = ion_d_axes.mean(axis=0)
    error = float(_standard_error(ion_d))
    error_axes = _standard_error(ion_d_axes)
    block_values: list[float] = []
    if blocks > 1 and traj.n_frames // blocks >= 6:
        size = traj.n_frames // blocks
        # All blocks in one FFT: (size, blocks, n, 3); each block's MSD from its own origins.
        parts = positions[: size * blocks].reshape(blocks, size, *positions.shape[1:])
        block_msd = msd_fft(np.moveaxis(parts, 0, 1)).mean(axis=2).sum(axis=-1)  # (size, B)
        t = time_ps[:size]
        # Each block is fitted over the same fraction of its length as the full run.
        b_lo = min(round(lo * size / traj.n_frames), size - 4)
        b_hi = max(round(hi * size / traj.n_frames), b_lo + 3)
        block_values = [
            _slope(t[b_lo:b_hi], block_msd[b_lo:b_hi, b]) / 6.0 * A2_PER_PS_TO_CM2_PER_S
            for b in range(blocks)
        ]
    n_ions = positions.shape[1]
    volume_cm3 = abs(np.linalg.det(traj.cell)) * 1e-24
    density = n_ions / volume_cm3
    conductivity = density * (charge * E_CHARGE) ** 2 * d / (KB_SI * temperature)
    return DiffusionResult(
        species,
        temperature,
        time_ps,
        total,
        axes,
        (float(time_ps[lo]), float(time_ps[hi - 1])),
        float(d),
        error,
        d_axes,
        float(conductivity),
        block_values,
        error_axes,
        n_ions - 1,
    )


def plot_msd(result: DiffusionResult, path: Path) -> Path:
    """MSD(t) per axis and total, with the fitted line over the window."""
    from atomlens.plotting import LITERAL, save_figure, subplots

    figure, axis = subplots(figsize=(5, 3.6))
    for k, label in enumerate("xyz"):
        axis.plot(result.time_ps, result.msd_axes[:, k], linewidth=0.8, label=f"MSD {label}")
    axis.plot(result.time_ps, result.msd, color="black", linewidth=1.2, label="MSD total")
    lo, hi = result.fit_range_ps
    t = np.linspace(lo, hi, 10)
    slope = 6 * result.diffusivity / A2_PER_PS_TO_CM2_PER_S
    inside = (result.time_ps >= lo) & (result.time_ps <= hi)
    offset = np.mean(result.msd[inside] - slope * result.time_ps[inside])
    axis.plot(t, offset + slope * t, "r--", label="fit")
    axis.set_xlabel("time (ps)")
    axis.set_ylabel("MSD (Å²)")
    axis.set_title(
        f"{result.species} at {result.temperature:g} K: D = {result.diffusivity:.3g} ± "
        f"{result.diffusivity_std:.2g} cm²/s",
        fontsize=9,
        **LITERAL,
    )
    axis.legend(fontsize=7)
    return save_figure(figure, path)
