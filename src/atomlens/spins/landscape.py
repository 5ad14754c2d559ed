"""Free-energy landscapes in the magnetisation: barriers, coercivity and activation volumes.

A :class:`FreeEnergyCurve` holds ``F_0(M; T)`` on bins of ``m = M / M_s`` (from a Wang-Landau
run at fixed ``T``, ``k_B = 1``); unvisited bins carry NaN and are never used.

Sign convention: the sample is magnetised along +z (``M > 0``) and a reversal field of
magnitude ``H >= 0`` is applied along -z, so the exact Zeeman term gives

    F_H(M) = F_0(M) + H M = F_0(m) + H M_s m.

``H`` is an energy per unit moment (the unit of ``F`` divided by the unit of ``M_s``).

Stationary points (see :func:`barrier`):

* The curve is smoothed on each contiguous run of visited bins (a local cubic least-squares
  fit over ``smoothing`` bins, i.e. Savitzky-Golay on a uniform grid; ``smoothing=0`` keeps
  the data) and interpolated by a not-a-knot cubic spline, which reproduces polynomials up to
  cubic order exactly. Extrema of ``F_H`` are the sign changes of the spline derivative
  ``F_0'(m) + H M_s``, refined by root finding (sub-bin precision).
* Only the first and the last bin of the whole ``m`` grid are ends of the range: there, a
  visited end counts as a (boundary) minimum when ``F_H`` increases away from it, as for a
  single macrospin whose minimum sits at ``m = 1``. Ends of a visited run next to unvisited
  bins (a gap, or unsampled bins at the top) are never minima: ``F`` may keep falling there.
* Pairs of neighbouring extrema that differ by at most ``tolerance`` in ``F_H`` are cancelled
  (1-D persistence simplification), which removes wiggles left by sampling noise.
* The metastable minimum ``m_min`` is the valid minimum with the largest ``m``; it must lie
  at ``m > 0``. Within its visited run, ``L`` is the lowest point of ``F_H`` at smaller ``m``
  and the saddle ``m_saddle`` is the highest point between ``L`` and ``m_min``; it must be an
  interior maximum (otherwise the barrier is not resolved by the visited bins). The barrier is
  ``dF = F_H(m_saddle) - F_H(m_min)`` and the activation volume is
  ``v_a = (M_min - M_saddle) / M_s = m_min - m_saddle = -(1/M_s) d dF / dH``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import CubicSpline, PPoly
from scipy.optimize import brentq, curve_fit

from atomlens.spins.system import SpinModelError

#: Default smoothing window in bins (local cubic fit; Savitzky-Golay on uniform bins).
DEFAULT_SMOOTHING = 9
#: Evaluation points per bin used to bracket the zeros of the derivative.
_REFINE = 16
_MIN_RUN = 3  # visited runs with fewer bins cannot hold a stationary point


@dataclass
class FreeEnergyCurve:
    """Free energy ``F_0(M; T)`` against the reduced magnetisation at one temperature.

    Attributes:
        temperature: Temperature ``T`` (``k_B = 1``, same unit as the free energy).
        m: Bin centres of ``M / M_s``, strictly increasing, within ``[-1, 1]``.
        free_energy: ``F_0`` per bin; NaN marks bins the simulation never visited.
        saturation_moment: Saturation moment ``M_s`` (> 0).
    """

    temperature: float
    m: np.ndarray
    free_energy: np.ndarray
    saturation_moment: float = 1.0

    def __post_init__(self) -> None:
        self.m = np.asarray(self.m, dtype=np.float64).ravel()
        self.free_energy = np.asarray(self.free_energy, dtype=np.float64).ravel()
        self.temperature = float(self.temperature)
        self.saturation_moment = float(self.saturation_moment)
        if self.m.shape != self.free_energy.shape:
            raise SpinModelError(
                f"m has {self.m.size} bins but free_energy has {self.free_energy.size}"
            )
        if not np.all(np.isfinite(self.m)):
            raise SpinModelError("m must be finite")
        if self.m.size > 1 and not np.all(np.diff(self.m) > 0):
            raise SpinModelError("m must be strictly increasing")
        if self.m.size and (self.m[0] < -1 - 1e-9 or self.m[-1] > 1 + 1e-9):
            raise SpinModelError("m = M / M_s must lie within [-1, 1]")
        n_finite = int(np.count_nonzero(np.isfinite(self.free_energy)))
        if n_finite < 5:
            raise SpinModelError(
                f"free-energy curve needs at least 5 visited (finite) bins, got {n_finite}"
            )
        if not (math.isfinite(self.saturation_moment) and self.saturation_moment > 0):
            raise SpinModelError(f"saturation_moment must be > 0, got {self.saturation_moment}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise SpinModelError(f"temperature must be >= 0, got {self.temperature}")

    @property
    def visited(self) -> np.ndarray:
        """Boolean mask of the visited (finite) bins."""
        return np.isfinite(self.free_energy)

    def with_field(self, field_value: float) -> FreeEnergyCurve:
        """The curve ``F_0(m) + H M_s m`` (NaN bins stay NaN), e.g. to fold a field in."""
        return FreeEnergyCurve(
            self.temperature,
            self.m.copy(),
            self.free_energy + field_value * self.saturation_moment * self.m,
            self.saturation_moment,
        )


@dataclass
class BarrierResult:
    """Stationary points of ``F_H`` and the reversal barrier at one field.

    Attributes:
        field: Reversal field ``H >= 0`` (along -z).
        resolved: True when a metastable minimum at ``m > 0`` and its saddle were found.
        m_min: Metastable minimum ``M_m / M_s`` (NaN if there is none).
        m_saddle: Saddle ``M_sd / M_s`` (NaN if not resolved).
        f_min: ``F_H`` at the metastable minimum.
        f_saddle: ``F_H`` at the saddle.
        barrier: ``dF = f_saddle - f_min`` (NaN if not resolved).
        activation_volume: ``v_a = m_min - m_saddle`` (NaN if not resolved).
        m_stable: Position of the lowest visited ``F_H`` (global minimum over visited bins).
        f_stable: ``F_H`` there.
        reason: Why the barrier is not resolved (empty when resolved).
    """

    field: float
    resolved: bool
    m_min: float = math.nan
    m_saddle: float = math.nan
    f_min: float = math.nan
    f_saddle: float = math.nan
    barrier: float = math.nan
    activation_volume: float = math.nan
    m_stable: float = math.nan
    f_stable: float = math.nan
    reason: str = ""


@dataclass
class BarrierCurve:
    """Barriers of one curve over a set of fields (:func:`barrier_curve`).

    Attributes:
        temperature: Temperature of the curve.
        fields: Fields ``H``, shape (k,).
        results: One :class:`BarrierResult` per field.
    """

    temperature: float
    fields: np.ndarray
    results: list[BarrierResult]

    @property
    def barrier(self) -> np.ndarray:
        """``dF(H)`` per field (NaN where not resolved)."""
        return np.array([r.barrier for r in self.results])

    @property
    def resolved(self) -> np.ndarray:
        """Boolean mask of the resolved fields."""
        return np.array([r.resolved for r in self.results], dtype=bool)

    @property
    def m_min(self) -> np.ndarray:
        """Metastable minimum per field."""
        return np.array([r.m_min for r in self.results])

    @property
    def m_saddle(self) -> np.ndarray:
        """Saddle per field."""
        return np.array([r.m_saddle for r in self.results])

    @property
    def activation_volume(self) -> np.ndarray:
        """``v_a = m_min - m_saddle`` per field."""
        return np.array([r.activation_volume for r in self.results])


@dataclass
class PowerLawFit:
    """Fit ``dF(H) = dF0 (1 - H / H0)^n`` (n = 2 for a coherently rotating macrospin).

    Attributes:
        df0: Prefactor ``dF0``.
        h0: Field ``H0`` where the fitted barrier vanishes.
        n: Exponent.
        fields: Fields used in the fit (those with ``dF > 0``).
        barriers: Barriers used in the fit.
        rms: Root-mean-square residual of the fit.
    """

    df0: float
    h0: float
    n: float
    fields: np.ndarray
    barriers: np.ndarray
    rms: float


@dataclass
class CoercivityResult:
    """Coercive fields of one curve (:func:`coercivity`).

    Attributes:
        temperature: Temperature ``T``.
        c: Thermal-activation criterion ``dF(H_c) = c T``.
        hc_spinodal: Smallest field where the metastable minimum disappears (NaN if it
            survives up to ``field_max``).
        hc_thermal: Field where ``dF = c T`` (0 when ``dF(0) < c T``; NaN if not reached).
        barrier_zero_field: ``dF(H = 0)`` (NaN if not resolved at zero field).
        resolved_at_zero_field: False when there is no resolved metastable state at ``H = 0``.
        below_threshold_at_zero_field: True when ``dF(0) < c T`` or there is no metastable
            state at ``H = 0`` (then ``hc_thermal = 0``); False when ``dF(0)`` is not resolved.
        activation_volume: ``v_a = m_min - m_saddle`` at ``hc_thermal``.
        at_hc: The :class:`BarrierResult` at ``hc_thermal``.
        va_fields: Fields sampled around ``hc_thermal``.
        va_values: ``v_a`` at those fields.
        fit: Power-law fit of ``dF(H)`` on ``[0, hc_spinodal)`` (None if too few points).
        field_max: Upper end of the field search.
    """

    temperature: float
    c: float
    hc_spinodal: float
    hc_thermal: float
    barrier_zero_field: float
    resolved_at_zero_field: bool
    below_threshold_at_zero_field: bool
    activation_volume: float
    at_hc: BarrierResult | None
    va_fields: np.ndarray = field(default_factory=lambda: np.zeros(0))
    va_values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fit: PowerLawFit | None = None
    field_max: float = math.nan


# --------------------------------------------------------------------------- smoothing


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges ``[a, b)`` of the contiguous True runs of ``mask``."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def smooth_values(x: np.ndarray, y: np.ndarray, window: int, order: int = 3) -> np.ndarray:
    """Local polynomial least-squares smoothing (Savitzky-Golay on uniform grids).

    Each point is replaced by the value at that point of a degree-``order`` polynomial fitted
    to the ``window`` nearest points in index (windows are shifted inwards at the ends, like
    ``scipy.signal.savgol_filter(mode="interp")``). Works on non-uniform ``x``.

    Args:
        x: Abscissae, increasing.
        y: Values (finite).
        window: Window length in points; made odd, clipped to ``len(x)``. ``<= order + 1``
            returns ``y`` unchanged.
        order: Polynomial degree.

    Returns:
        The smoothed values.
    """
    n = len(x)
    window = min(int(window) | 1, n if n % 2 else n - 1)
    if window <= order + 1:
        return np.array(y, dtype=np.float64)
    half = window // 2
    start = np.clip(np.arange(n) - half, 0, n - window)
    idx = start[:, None] + np.arange(window)[None, :]
    xs, ys = x[idx], y[idx]
    scale = max(float(np.median(np.diff(x))), 1e-300) * half
    t = (xs - x[:, None]) / scale  # evaluation point at t = 0
    vander = t[:, :, None] ** np.arange(order + 1)[None, None, :]
    gram = np.einsum("nwi,nwj->nij", vander, vander)
    rhs = np.einsum("nwi,nw->ni", vander, ys)
    coef = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
    return coef[:, 0]


@dataclass
class _Run:
    """One contiguous run of visited bins with its spline."""

    m: np.ndarray
    spline: CubicSpline
    dspline: PPoly
    fine: np.ndarray
    dfine: np.ndarray
    starts_range: bool
    ends_range: bool


@dataclass
class SmoothedLandscape:
    """Smoothed ``F_0`` on each visited run; evaluates ``F_H`` and its stationary points.

    Build it with :func:`smooth_curve` and reuse it for many fields.

    Attributes:
        curve: The input curve.
        smoothing: Smoothing window in bins.
        tolerance: Extrema pairs closer than this in ``F_H`` are cancelled.
        noise: RMS of the raw minus smoothed values over the visited bins.
    """

    curve: FreeEnergyCurve
    smoothing: int
    tolerance: float
    noise: float
    runs: list[_Run] = field(repr=False, default_factory=list)

    def free_energy(self, m: np.ndarray, field_value: float = 0.0) -> np.ndarray:
        """Smoothed ``F_H(m)``; NaN outside the visited runs."""
        m = np.asarray(m, dtype=np.float64)
        out = np.full(m.shape, np.nan)
        for run in self.runs:
            inside = (m >= run.m[0]) & (m <= run.m[-1])
            out[inside] = run.spline(m[inside])
        return out + field_value * self.curve.saturation_moment * m

    def field_upper_bound(self) -> float:
        """A field above which ``F_H`` increases everywhere (no metastable minimum)."""
        slope = max(float(np.max(-run.dfine)) for run in self.runs)
        return max(slope, 0.0) / self.curve.saturation_moment * (1 + 1e-6) + 1e-12

    def extrema(self, field_value: float, run: _Run) -> list[tuple[float, float, int, bool]]:
        """Alternating extrema ``(m, F_H, +1 min / -1 max, is_end)`` of ``F_H`` on a run.

        Both run ends are included (an end is a minimum when ``F_H`` increases away from
        it); neighbouring pairs closer than ``tolerance`` are cancelled.
        """
        hm = field_value * self.curve.saturation_moment
        grad = run.dfine + hm
        pos = grad > 0
        pts: list[tuple[float, float, int, bool]] = []
        ends = (run.m[0], run.m[-1])

        def value(x: float) -> float:
            return float(run.spline(x)) + hm * x

        pts.append((ends[0], value(ends[0]), 1 if pos[0] else -1, True))
        for i in np.flatnonzero(pos[1:] != pos[:-1]):
            a, b = run.fine[i], run.fine[i + 1]
            x = brentq(lambda t: float(run.dspline(t)) + hm, a, b, xtol=1e-14, rtol=1e-13)
            pts.append((float(x), value(x), 1 if pos[i + 1] else -1, False))
        pts.append((ends[1], value(ends[1]), -1 if pos[-1] else 1, True))
        return _simplify(pts, self.tolerance)

    def barrier(self, field_value: float) -> BarrierResult:
        """Barrier at one field (see :func:`barrier`)."""
        field_value = float(field_value)
        if not math.isfinite(field_value) or field_value < 0:
            raise SpinModelError(f"field must be finite and >= 0, got {field_value}")
        per_run = [self.extrema(field_value, run) for run in self.runs]
        stable = min((p for pts in per_run for p in pts), key=lambda p: p[1])
        best: tuple[int, int] | None = None  # (run index, point index) of the metastable min
        for r, (run, pts) in enumerate(zip(self.runs, per_run, strict=True)):
            for k, (x, _, kind, is_end) in enumerate(pts):
                if kind != 1:
                    continue
                if is_end and not (
                    (x == run.m[0] and run.starts_range) or (x == run.m[-1] and run.ends_range)
                ):
                    continue  # next to unvisited bins: F may keep falling there
                if best is None or x > per_run[best[0]][best[1]][0]:
                    best = (r, k)
        out = BarrierResult(field_value, False, m_stable=stable[0], f_stable=stable[1])
        if best is None:
            out.reason = "no minimum of F_H in the visited bins"
            return out
        pts = per_run[best[0]]
        k = best[1]
        if pts[k][0] <= 0:
            out.reason = "no metastable minimum at m > 0 (reversed)"
            return out
        out.m_min, out.f_min = pts[k][0], pts[k][1]
        if k == 0:
            out.reason = "no lower state at smaller m in the visited run (no saddle)"
            return out
        low = min(range(k), key=lambda j: pts[j][1])
        if low == k - 1:
            out.reason = "F_H rises up to the end of the visited run: saddle not visited"
            return out
        sd = max(range(low + 1, k), key=lambda j: pts[j][1])
        out.m_saddle, out.f_saddle = pts[sd][0], pts[sd][1]
        out.barrier = out.f_saddle - out.f_min
        out.activation_volume = out.m_min - out.m_saddle
        out.resolved = True
        return out


def _simplify(
    pts: list[tuple[float, float, int, bool]], tolerance: float
) -> list[tuple[float, float, int, bool]]:
    """Cancel neighbouring extrema pairs with ``|dF| <= tolerance`` (smallest first)."""
    pts = list(pts)
    while len(pts) > 2:
        gaps = [abs(pts[i + 1][1] - pts[i][1]) for i in range(len(pts) - 1)]
        i = int(np.argmin(gaps))
        if gaps[i] > tolerance:
            break
        if i == 0 or i == len(pts) - 2:
            # a pair touching a run end: drop the interior extremum and turn the end around
            # so that the list keeps alternating and still starts/ends at the run ends
            end, inner = (0, 1) if i == 0 else (len(pts) - 1, len(pts) - 2)
            x, f, kind, _ = pts[end]
            pts[end] = (x, f, -kind, True)
            del pts[inner]
        else:
            del pts[i : i + 2]
    return pts


def smooth_curve(
    curve: FreeEnergyCurve,
    smoothing: int = DEFAULT_SMOOTHING,
    tolerance: float | None = None,
) -> SmoothedLandscape:
    """Smooth and spline-interpolate the visited runs of a curve.

    Args:
        curve: The free-energy curve.
        smoothing: Smoothing window in bins (local cubic fit; odd, ``0`` or ``1`` = none).
            Curves that are polynomials up to cubic order are reproduced for any window.
        tolerance: Extrema pairs with ``|dF| <= tolerance`` are cancelled. None: twice the
            RMS residual of the smoothing (zero for exact curves), a noise-level estimate.

    Returns:
        A :class:`SmoothedLandscape`.

    Raises:
        SpinModelError: If no visited run has at least 3 bins.
    """
    if smoothing < 0:
        raise SpinModelError(f"smoothing must be >= 0, got {smoothing}")
    finite = curve.visited
    spans = [(a, b) for a, b in _runs(finite) if b - a >= _MIN_RUN]
    if not spans:
        raise SpinModelError("no run of at least 3 consecutive visited bins")
    runs: list[_Run] = []
    resid: list[np.ndarray] = []
    for a, b in spans:
        m, f = curve.m[a:b], curve.free_energy[a:b]
        fs = smooth_values(m, f, smoothing) if smoothing > 1 else f.copy()
        resid.append(f - fs)
        spline = CubicSpline(m, fs, bc_type="not-a-knot")
        dspline = spline.derivative()
        steps = np.linspace(0.0, 1.0, _REFINE + 1)[:-1]
        fine = np.concatenate([(m[:-1, None] + np.diff(m)[:, None] * steps).ravel(), m[-1:]])
        # only an end of the whole bin range can be a boundary minimum: next to unvisited
        # (masked) bins F may keep falling
        runs.append(_Run(m, spline, dspline, fine, dspline(fine), a == 0, b == len(finite)))
    noise = float(np.sqrt(np.mean(np.concatenate(resid) ** 2)))
    tol = 2.0 * noise if tolerance is None else float(tolerance)
    if tol < 0:
        raise SpinModelError(f"tolerance must be >= 0, got {tol}")
    return SmoothedLandscape(curve, int(smoothing), tol, noise, runs)


# --------------------------------------------------------------------------- barriers


def _landscape(
    curve: FreeEnergyCurve | SmoothedLandscape, smoothing: int, tolerance: float | None
) -> SmoothedLandscape:
    if isinstance(curve, SmoothedLandscape):
        return curve
    return smooth_curve(curve, smoothing, tolerance)


def barrier(
    curve: FreeEnergyCurve | SmoothedLandscape,
    field: float,
    *,
    smoothing: int = DEFAULT_SMOOTHING,
    tolerance: float | None = None,
) -> BarrierResult:
    """Reversal barrier of ``F_H(M) = F_0(M) + H M`` at one field (module docstring).

    Args:
        curve: Free-energy curve (or a prebuilt :class:`SmoothedLandscape`).
        field: Reversal field ``H >= 0`` applied along -z.
        smoothing: Smoothing window in bins (see :func:`smooth_curve`).
        tolerance: Extremum cancellation threshold (see :func:`smooth_curve`).

    Returns:
        The :class:`BarrierResult`; ``resolved=False`` with NaN barrier when there is no
        metastable minimum at ``m > 0`` or its saddle lies outside the visited bins.
    """
    return _landscape(curve, smoothing, tolerance).barrier(field)


def barrier_curve(
    curve: FreeEnergyCurve | SmoothedLandscape,
    fields: Iterable[float],
    *,
    smoothing: int = DEFAULT_SMOOTHING,
    tolerance: float | None = None,
) -> BarrierCurve:
    """Barriers over several fields (the curve is smoothed once).

    Args:
        curve: Free-energy curve (or a :class:`SmoothedLandscape`).
        fields: Fields ``H >= 0``.
        smoothing: Smoothing window in bins.
        tolerance: Extremum cancellation threshold.

    Returns:
        A :class:`BarrierCurve` (results list plus array properties).
    """
    land = _landscape(curve, smoothing, tolerance)
    fields = np.asarray(list(fields), dtype=np.float64)
    return BarrierCurve(land.curve.temperature, fields, [land.barrier(h) for h in fields])


# --------------------------------------------------------------------------- coercivity


def _power_law(h: np.ndarray, df0: float, h0: float, n: float) -> np.ndarray:
    return df0 * np.clip(1.0 - h / h0, 0.0, None) ** n


def fit_power_law(fields: np.ndarray, barriers: np.ndarray) -> PowerLawFit | None:
    """Fit ``dF(H) = dF0 (1 - H/H0)^n`` over the fields with ``dF > 0``.

    Args:
        fields: Fields ``H``.
        barriers: Barriers ``dF(H)`` (NaN or ``<= 0`` entries are skipped).

    Returns:
        The fit, or None with fewer than 4 usable points or if the fit fails.
    """
    fields = np.asarray(fields, dtype=np.float64)
    barriers = np.asarray(barriers, dtype=np.float64)
    use = np.isfinite(barriers) & (barriers > 0) & np.isfinite(fields)
    h, y = fields[use], barriers[use]
    if h.size < 4 or np.ptp(h) <= 0:
        return None
    hmax = float(h.max())
    # initial guess: H0 from a linear extrapolation of dF^(2/3), n = 3/2 (generic spinodal)
    y23 = y ** (2.0 / 3.0)
    slope, icpt = np.polyfit(h, y23, 1)
    h0_guess = -icpt / slope if slope < 0 else 1.2 * hmax
    h0_guess = max(h0_guess, hmax * (1 + 1e-6) + 1e-12)
    p0 = (max(float(y[np.argmin(h)]), 1e-300), h0_guess, 1.5)
    lower = (0.0, hmax * (1 + 1e-12), 0.1)
    upper = (np.inf, np.inf, 10.0)
    try:
        popt, _ = curve_fit(_power_law, h, y, p0=p0, bounds=(lower, upper), maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    rms = float(np.sqrt(np.mean((_power_law(h, *popt) - y) ** 2)))
    return PowerLawFit(float(popt[0]), float(popt[1]), float(popt[2]), h, y, rms)


def coercivity(
    curve: FreeEnergyCurve | SmoothedLandscape,
    c: float = 25.0,
    field_max: float | None = None,
    *,
    smoothing: int = DEFAULT_SMOOTHING,
    tolerance: float | None = None,
    n_scan: int = 64,
    n_fit: int = 41,
    n_va: int = 11,
    rtol: float = 1e-10,
) -> CoercivityResult:
    """Coercive fields by the spinodal and the thermal-activation criteria.

    The spinodal field is the smallest ``H`` where the metastable minimum disappears: the
    first unresolved field of a scan over ``[0, field_max]`` is bracketed and bisected to
    ``rtol * field_max``. The thermal field solves ``dF(H) = c T`` (Brent's method) below the
    spinodal; it is 0 when ``dF(0) < c T`` (flagged). ``dF`` decreases with ``H`` because
    ``d dF / dH = -M_s v_a < 0``.

    Args:
        curve: Free-energy curve (or a :class:`SmoothedLandscape`).
        c: Criterion ``dF(H_c) = c T``.
        field_max: Upper end of the search; None: a field above which ``F_H`` increases
            everywhere, so the metastable minimum is certainly gone.
        smoothing: Smoothing window in bins.
        tolerance: Extremum cancellation threshold.
        n_scan: Fields in the scan that brackets the spinodal.
        n_fit: Fields in ``[0, hc_spinodal)`` for the power-law fit.
        n_va: Samples of ``v_a(H)`` around ``hc_thermal``.
        rtol: Relative tolerance of the bisection and of the root finding.

    Returns:
        The :class:`CoercivityResult`.
    """
    land = _landscape(curve, smoothing, tolerance)
    temperature = land.curve.temperature
    threshold = c * temperature
    hmax = land.field_upper_bound() if field_max is None else float(field_max)
    if not (math.isfinite(hmax) and hmax > 0):
        raise SpinModelError(f"field_max must be > 0, got {hmax}")
    at0 = land.barrier(0.0)
    result = CoercivityResult(
        temperature=temperature,
        c=float(c),
        hc_spinodal=0.0,
        hc_thermal=0.0,
        barrier_zero_field=at0.barrier,
        resolved_at_zero_field=at0.resolved,
        # below c T only when that is known: a resolved barrier under the threshold, or no
        # metastable state at all (reversed); an unresolved landscape says nothing
        below_threshold_at_zero_field=(
            bool(at0.barrier < threshold) if at0.resolved else "reversed" in at0.reason
        ),
        activation_volume=at0.activation_volume,
        at_hc=at0,
        field_max=hmax,
    )
    if not at0.resolved:
        if "reversed" not in at0.reason:
            # not a physical zero (no metastable state) but a landscape the visited bins do
            # not resolve, e.g. a minimum beyond the sampled range: report no value
            result.hc_spinodal = math.nan
            result.hc_thermal = math.nan
        return result

    # spinodal: first unresolved field of the scan, then bisection
    lo = 0.0
    hi = math.nan
    for h in np.linspace(0.0, hmax, n_scan + 1)[1:]:
        if land.barrier(h).resolved:
            lo = float(h)
        else:
            hi = float(h)
            break
    if math.isnan(hi):
        result.hc_spinodal = math.nan
        h_last = hmax
    else:
        while hi - lo > rtol * hmax:
            mid = 0.5 * (lo + hi)
            if land.barrier(mid).resolved:
                lo = mid
            else:
                hi = mid
        result.hc_spinodal = 0.5 * (lo + hi)
        h_last = lo  # last resolved field
    resolved_last = land.barrier(h_last)

    # thermal activation: dF(H) = c T
    if result.below_threshold_at_zero_field:
        h_t = 0.0
    elif resolved_last.barrier >= threshold:
        h_t = result.hc_spinodal  # barrier jumps below c T (or never reaches it: NaN)
    else:

        def excess(h: float) -> float:
            res = land.barrier(h)
            return (res.barrier if res.resolved else 0.0) - threshold

        h_t = brentq(excess, 0.0, h_last, xtol=rtol * hmax, rtol=4 * np.finfo(float).eps)
    result.hc_thermal = float(h_t)
    if math.isfinite(h_t):
        at_hc = land.barrier(min(h_t, h_last))
        result.at_hc = at_hc
        result.activation_volume = at_hc.activation_volume
        span = 0.1 * (h_last if h_last > 0 else hmax)
        va_fields = np.linspace(max(0.0, h_t - span), min(h_last, h_t + span), n_va)
        va = barrier_curve(land, va_fields)
        result.va_fields = va_fields[va.resolved]
        result.va_values = va.activation_volume[va.resolved]
    else:
        result.at_hc = None
        result.activation_volume = math.nan

    fit_fields = np.linspace(0.0, h_last, n_fit)
    result.fit = fit_power_law(fit_fields, barrier_curve(land, fit_fields).barrier)
    return result


def _num(x: float | None) -> float | None:
    """A finite float, or None (JSON-friendly missing value)."""
    return float(x) if x is not None and math.isfinite(x) else None


def coercivity_row(result: CoercivityResult) -> dict[str, float | bool | None]:
    """One table row (missing values are None) for a :class:`CoercivityResult`."""
    fit = result.fit
    return {
        "temperature": result.temperature,
        "c": result.c,
        "hc_spinodal": _num(result.hc_spinodal),
        "hc_thermal": _num(result.hc_thermal),
        "barrier_zero_field": _num(result.barrier_zero_field),
        "va_at_hc": _num(result.activation_volume),
        "fit_n": _num(fit.n) if fit else None,
        "fit_h0": _num(fit.h0) if fit else None,
        "fit_df0": _num(fit.df0) if fit else None,
        "below_threshold_at_zero_field": result.below_threshold_at_zero_field,
    }


def coercivity_table(
    curves: Iterable[FreeEnergyCurve],
    c: float = 25.0,
    *,
    smoothing: int = DEFAULT_SMOOTHING,
    tolerance: float | None = None,
) -> list[dict[str, float | bool | None]]:
    """One row per temperature (sorted by ``T``) for CSV/JSON output.

    Keys: ``temperature``, ``c``, ``hc_spinodal``, ``hc_thermal``, ``barrier_zero_field``,
    ``va_at_hc``, ``fit_n``, ``fit_h0``, ``fit_df0``, ``below_threshold_at_zero_field``.
    Missing values are None.

    Args:
        curves: Free-energy curves, one per temperature.
        c: Criterion ``dF(H_c) = c T``.
        smoothing: Smoothing window in bins.
        tolerance: Extremum cancellation threshold.

    Returns:
        The rows.
    """
    rows = [
        coercivity_row(coercivity(cv, c, smoothing=smoothing, tolerance=tolerance)) for cv in curves
    ]
    return sorted(rows, key=lambda r: float(r["temperature"] or 0.0))


def downward_convexity(
    temperatures: Sequence[float] | np.ndarray, hc: Sequence[float | None] | np.ndarray
) -> dict[str, object]:
    """Whether ``H_c(T)`` is downward convex.

    "Downward convex" (as in the Nd2Fe14B coercivity papers of Nishino, Miyashita et al.)
    means the curve bulges downwards, sagging below its chords: ``d^2 H_c / dT^2 > 0``, i.e.
    convex in the mathematical sense. ``H_c = 2D (1 - sqrt(c T / D))`` of a macrospin is
    downward convex; a linear decrease is not; ``a - b T^2`` is upward convex.

    Args:
        temperatures: Temperatures (any order; non-finite ``H_c`` entries are dropped).
        hc: Coercive fields (None or NaN = missing).

    Returns:
        A dict with ``downward_convex`` (bool: curvature of a quadratic fit ``> 0``),
        ``curvature`` (that second derivative ``2 a``), ``second_differences`` (second
        divided differences ``H_c''`` on consecutive triples), ``fraction_positive`` (of the
        second differences), ``chord_sag`` (mean of chord minus ``H_c`` between the end
        points, ``> 0`` when the curve lies below its chord) and ``n_points``.

    Raises:
        SpinModelError: With fewer than 3 finite points.
    """
    t = np.asarray(temperatures, dtype=np.float64)
    h = np.array([math.nan if v is None else float(v) for v in hc], dtype=np.float64)
    if t.shape != h.shape:
        raise SpinModelError("temperatures and hc must have the same length")
    keep = np.isfinite(t) & np.isfinite(h)
    t, h = t[keep], h[keep]
    order = np.argsort(t)
    t, h = t[order], h[order]
    if t.size < 3 or np.unique(t).size < 3:
        raise SpinModelError("downward_convexity needs at least 3 distinct finite points")
    s1 = np.diff(h) / np.diff(t)
    second = 2.0 * np.diff(s1) / (t[2:] - t[:-2])
    curvature = float(2.0 * np.polyfit(t, h, 2)[0])
    scale = (np.ptp(h) + np.max(np.abs(h)) * 1e-12) / np.ptp(t) ** 2
    chord = h[0] + (h[-1] - h[0]) * (t - t[0]) / (t[-1] - t[0])
    return {
        "downward_convex": bool(curvature > 1e-9 * scale),
        "curvature": curvature,
        "second_differences": second.tolist(),
        "fraction_positive": float(np.mean(second > 0)),
        "chord_sag": float(np.mean(chord - h)),
        "n_points": int(t.size),
    }
