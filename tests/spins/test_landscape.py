from __future__ import annotations

import json
import math

import numpy as np
import pytest

from atomlens.spins.landscape import (
    FreeEnergyCurve,
    barrier,
    barrier_curve,
    coercivity,
    coercivity_table,
    downward_convexity,
    fit_power_law,
    smooth_curve,
)
from atomlens.spins.system import SpinModelError

D = 10.0  # anisotropy energy of the macrospin
T = 0.1
C = 25.0
M = np.linspace(-1.0, 1.0, 401)


def macrospin(temperature: float = T, ms: float = 1.0, d: float = D) -> FreeEnergyCurve:
    """Exact F_0(m) = -D m^2 of one coherently rotating macrospin."""
    return FreeEnergyCurve(temperature, M.copy(), -d * M**2, ms)


def exact_barrier(h: float, d: float = D) -> float:
    return d * (1.0 - h / (2.0 * d)) ** 2


def quartic(a: float = 40.0, m0: float = 0.8) -> FreeEnergyCurve:
    """Double well with interior minima at +-m0 (a generic, non-boundary spinodal)."""
    return FreeEnergyCurve(T, M.copy(), a * (-(M**2) / 2 + M**4 / (4 * m0**2)), 1.0)


# ----------------------------------------------------------------------------- exact macrospin


@pytest.mark.parametrize("h", [0.0, 1.0, 5.0, 10.0, 15.0, 19.0])
def test_macrospin_barrier(h: float) -> None:
    res = barrier(macrospin(), h)
    assert res.resolved
    assert res.barrier == pytest.approx(exact_barrier(h), rel=1e-3)
    assert res.m_min == pytest.approx(1.0)  # boundary minimum at the last bin
    assert res.m_saddle == pytest.approx(h / (2 * D), abs=1e-9)
    assert res.activation_volume == pytest.approx(res.m_min - res.m_saddle)


def test_macrospin_coercivity() -> None:
    res = coercivity(macrospin(), c=C)
    assert res.hc_spinodal == pytest.approx(2 * D, rel=1e-3)
    hc_exact = 2 * D * (1 - math.sqrt(C * T / D))
    assert res.hc_thermal == pytest.approx(hc_exact, rel=1e-3)
    assert res.barrier_zero_field == pytest.approx(D, rel=1e-9)
    assert not res.below_threshold_at_zero_field
    assert res.fit is not None
    assert res.fit.n == pytest.approx(2.0, abs=0.05)
    assert res.fit.h0 == pytest.approx(2 * D, rel=1e-2)
    assert res.fit.df0 == pytest.approx(D, rel=1e-2)
    # v_a at H_c: 1 - H_c / 2D
    assert res.activation_volume == pytest.approx(1 - hc_exact / (2 * D), rel=1e-3)
    assert res.va_fields.size > 3
    np.testing.assert_allclose(res.va_values, 1 - res.va_fields / (2 * D), rtol=1e-6)


@pytest.mark.parametrize("ms", [1.0, 2.5])
def test_activation_volume_is_field_derivative(ms: float) -> None:
    land = smooth_curve(macrospin(ms=ms))
    step = 1e-4
    for h in [0.5, 2.0, 3.5]:
        res = land.barrier(h)
        slope = (land.barrier(h + step).barrier - land.barrier(h - step).barrier) / (2 * step)
        assert res.activation_volume == pytest.approx(res.m_min - res.m_saddle)
        assert res.activation_volume == pytest.approx(-slope / ms, rel=1e-5)
    # with M_s the Zeeman term is H M_s m: spinodal at 2D / M_s
    assert coercivity(land).hc_spinodal == pytest.approx(2 * D / ms, rel=1e-6)


def test_zero_smoothing_reproduces_input() -> None:
    rng = np.random.default_rng(3)
    f = -D * M**2 + rng.normal(0.0, 0.05, M.size)
    land = smooth_curve(FreeEnergyCurve(T, M, f), smoothing=0)
    np.testing.assert_allclose(land.free_energy(M), f, atol=1e-12)
    # a cubic is reproduced for any smoothing window
    cubic = 1.0 - 2.0 * M + 0.5 * M**2 + 3.0 * M**3
    land = smooth_curve(FreeEnergyCurve(T, M, cubic), smoothing=15)
    np.testing.assert_allclose(land.free_energy(M), cubic, atol=1e-9)
    assert land.noise < 1e-9


def test_quartic_interior_spinodal() -> None:
    a, m0 = 40.0, 0.8
    res = coercivity(quartic(a, m0), c=C)
    assert res.barrier_zero_field == pytest.approx(a * m0**2 / 4, rel=1e-3)
    assert res.hc_spinodal == pytest.approx(2 * a * m0 / (3 * math.sqrt(3)), rel=1e-3)
    r = barrier(quartic(a, m0), res.hc_thermal)
    assert r.barrier == pytest.approx(C * T, rel=1e-6)
    assert 0 < r.m_saddle < r.m_min < m0  # interior stationary points


def test_barrier_decreases_and_curve_arrays() -> None:
    fields = np.linspace(0.0, 25.0, 11)
    bc = barrier_curve(macrospin(), fields)
    ok = bc.resolved
    assert ok[:8].all() and not ok[-2:].any()  # gone above 2D = 20
    np.testing.assert_allclose(bc.barrier[ok], [exact_barrier(h) for h in fields[ok]], rtol=1e-6)
    assert np.all(np.diff(bc.barrier[ok]) < 0)
    assert np.isnan(bc.barrier[~ok]).all()


# ----------------------------------------------------------------------------- Zeeman identity


@pytest.mark.parametrize(("h", "h0"), [(6.0, 2.0), (12.0, 12.0), (9.0, 0.5)])
def test_zeeman_identity(h: float, h0: float) -> None:
    for curve in (macrospin(ms=1.7), quartic()):
        direct = barrier(curve, h)
        shifted = barrier(curve.with_field(h0), h - h0)
        assert direct.resolved == shifted.resolved
        if direct.resolved:
            assert shifted.barrier == pytest.approx(direct.barrier, rel=1e-9, abs=1e-12)
            assert shifted.m_saddle == pytest.approx(direct.m_saddle, abs=1e-9)
            assert shifted.m_min == pytest.approx(direct.m_min, abs=1e-9)


# ----------------------------------------------------------------------------- unvisited bins


def test_nan_block_on_negative_side() -> None:
    curve = macrospin()
    f = curve.free_energy.copy()
    f[(M > -0.6) & (M < -0.4)] = np.nan
    gapped = FreeEnergyCurve(T, M, f)
    for h in [0.0, 4.0, 12.0, 19.0]:
        assert barrier(gapped, h).barrier == pytest.approx(exact_barrier(h), rel=1e-9)
    a, b = coercivity(curve), coercivity(gapped)
    assert b.hc_spinodal == pytest.approx(a.hc_spinodal, rel=1e-6)
    assert b.hc_thermal == pytest.approx(a.hc_thermal, rel=1e-9)


def test_saddle_outside_visited_bins_is_not_resolved() -> None:
    f = -D * M**2
    only_positive = FreeEnergyCurve(T, M, np.where(M >= 0.3, f, np.nan))
    res = barrier(only_positive, 2.0)  # saddle at m = 0.1: never visited
    assert not res.resolved
    assert math.isnan(res.barrier)
    assert res.m_min == pytest.approx(1.0)
    assert "saddle" in res.reason
    # a gap that swallows the saddle: unresolved, while other fields are still fine
    gapped = FreeEnergyCurve(T, M, np.where((M > -0.1) & (M < 0.2), np.nan, f))
    assert not barrier(gapped, 2.0).resolved  # saddle at 0.1 lies in the gap
    assert barrier(gapped, 6.0).barrier == pytest.approx(exact_barrier(6.0), rel=1e-9)


def test_gap_edge_is_not_a_minimum() -> None:
    # F_H falls towards the gap at m = 0.5: that run end is not a minimum; the minimum at the
    # range end m = 1 is, but its saddle (m = 0.05) is cut off from it by the gap
    f = -D * M**2
    f[(M > 0.5) & (M < 0.9)] = np.nan
    res = barrier(FreeEnergyCurve(T, M, f), 1.0)
    assert res.m_min == pytest.approx(1.0)
    assert not res.resolved
    # unvisited bins at the top of the range (e.g. m above the sampled m_max): F still falls
    # into them, so the last visited bin is no minimum and the barrier is not resolved
    top = np.where(M < 0.9, -D * M**2, np.nan)
    res = barrier(FreeEnergyCurve(T, M, top), 1.0)
    assert not res.resolved and "minimum" in res.reason
    # the same curve sampled up to the range end m = 1 has its boundary minimum there
    res = barrier(FreeEnergyCurve(T, M, -D * M**2), 1.0)
    assert res.resolved and res.m_min == pytest.approx(1.0)


@pytest.mark.parametrize("n_finite", [0, 3, 4])
def test_too_few_finite_bins(n_finite: int) -> None:
    f = np.full(M.size, np.nan)
    f[:n_finite] = 1.0
    with pytest.raises(SpinModelError, match="at least 5"):
        FreeEnergyCurve(T, M, f)


def test_invalid_curves() -> None:
    with pytest.raises(SpinModelError, match="bins"):
        FreeEnergyCurve(T, M, np.zeros(M.size - 1))
    with pytest.raises(SpinModelError, match="increasing"):
        FreeEnergyCurve(T, M[::-1], np.zeros(M.size))
    with pytest.raises(SpinModelError):
        barrier(macrospin(), -1.0)


def test_no_metastable_state() -> None:
    # single well (above T_c): no metastable minimum even at zero field
    curve = FreeEnergyCurve(5.0, M, 3.0 * M**2)
    res = coercivity(curve)
    assert not res.resolved_at_zero_field
    assert res.hc_spinodal == 0.0 and res.hc_thermal == 0.0
    assert res.below_threshold_at_zero_field


def test_barrier_below_threshold_at_zero_field() -> None:
    res = coercivity(macrospin(temperature=0.5), c=C)  # dF(0) = 10 < 25 * 0.5
    assert res.below_threshold_at_zero_field
    assert res.hc_thermal == 0.0
    assert res.hc_spinodal == pytest.approx(2 * D, rel=1e-6)
    assert res.activation_volume == pytest.approx(1.0)


# ----------------------------------------------------------------------------- noise


def test_noisy_curve_default_smoothing() -> None:
    rng = np.random.default_rng(42)
    noisy = FreeEnergyCurve(T, M, -D * M**2 + rng.normal(0.0, 0.005, M.size))
    res = coercivity(noisy, c=C)
    assert res.hc_spinodal == pytest.approx(2 * D, rel=0.05)
    assert res.hc_thermal == pytest.approx(2 * D * (1 - math.sqrt(C * T / D)), rel=0.01)
    assert res.barrier_zero_field == pytest.approx(D, rel=0.01)
    assert res.fit is not None and res.fit.n == pytest.approx(2.0, abs=0.15)
    # quartic (interior minima) with noise
    a, m0 = 40.0, 0.8
    clean = quartic(a, m0)
    noisy = FreeEnergyCurve(T, M, clean.free_energy + rng.normal(0.0, 0.005, M.size))
    ref, res = coercivity(clean), coercivity(noisy)
    assert res.hc_spinodal == pytest.approx(ref.hc_spinodal, rel=0.05)
    assert res.hc_thermal == pytest.approx(ref.hc_thermal, rel=0.01)


def test_unsmoothed_noise_makes_spurious_extrema_that_tolerance_removes() -> None:
    rng = np.random.default_rng(7)
    noisy = FreeEnergyCurve(T, M, -D * M**2 + rng.normal(0.0, 0.005, M.size))
    land = smooth_curve(noisy, smoothing=0, tolerance=0.0)
    assert len(land.extrema(5.0, land.runs[0])) > 10
    land = smooth_curve(noisy, smoothing=0, tolerance=0.1)
    assert len(land.extrema(5.0, land.runs[0])) == 3  # left end, saddle, m = 1


# ----------------------------------------------------------------------------- fits and tables


def test_power_law_fit_recovers_exponent() -> None:
    h = np.linspace(0.0, 9.0, 30)
    fit = fit_power_law(h, 4.0 * (1 - h / 10.0) ** 1.5)
    assert fit is not None
    assert fit.n == pytest.approx(1.5, abs=1e-4)
    assert fit.h0 == pytest.approx(10.0, rel=1e-4)
    assert fit.df0 == pytest.approx(4.0, rel=1e-4)
    assert fit_power_law(h[:3], h[:3]) is None


def test_coercivity_table_and_convexity() -> None:
    temps = [0.02, 0.05, 0.1, 0.2, 0.3]
    rows = coercivity_table([macrospin(temperature=t) for t in reversed(temps)], c=C)
    assert [r["temperature"] for r in rows] == temps
    json.dumps(rows, allow_nan=False)  # JSON-clean (None for missing values)
    for row in rows:
        assert row["hc_spinodal"] == pytest.approx(2 * D, rel=1e-3)
        expected = 2 * D * (1 - math.sqrt(C * row["temperature"] / D))
        assert row["hc_thermal"] == pytest.approx(expected, rel=1e-3)
        assert row["barrier_zero_field"] == pytest.approx(D)
        assert row["fit_n"] == pytest.approx(2.0, abs=0.05)
    conv = downward_convexity([r["temperature"] for r in rows], [r["hc_thermal"] for r in rows])
    assert conv["downward_convex"] and conv["curvature"] > 0
    assert conv["fraction_positive"] == 1.0 and conv["chord_sag"] > 0


def test_downward_convexity_shapes() -> None:
    t = np.linspace(0.0, 1.0, 11)
    convex = downward_convexity(t, 5.0 - 2.0 * np.sqrt(t))  # a - b sqrt(T): bulges downward
    assert convex["downward_convex"]
    assert convex["curvature"] > 0 and convex["chord_sag"] > 0
    linear = downward_convexity(t, 5.0 - 2.0 * t)
    assert not linear["downward_convex"]
    assert linear["curvature"] == pytest.approx(0.0, abs=1e-9)
    concave = downward_convexity(t, 5.0 - 2.0 * t**2)
    assert not concave["downward_convex"] and concave["curvature"] < 0
    hc = [5.0, None, 3.0, 2.5, float("nan")]
    with_missing = downward_convexity([0.0, 0.5, 1.0, 2.0, 3.0], hc)
    assert with_missing["n_points"] == 3 and with_missing["downward_convex"]
    with pytest.raises(SpinModelError):
        downward_convexity([0.0, 1.0], [1.0, 0.5])


# ----------------------------------------------------------------------------- figures


def test_figures_write_png(tmp_path) -> None:
    from atomlens.spins.figures import plot_barrier, plot_coercivity, plot_free_energy_family

    curves = [macrospin(temperature=t) for t in (0.05, 0.1, 0.2)]
    p1 = plot_free_energy_family(curves[1], [0.0, 5.0, 10.0, 22.0], tmp_path / "family.png")
    p2 = plot_barrier(curves, tmp_path / "barrier.png", c=C)
    bc = barrier_curve(curves[0], np.linspace(0, 20, 9))
    p3 = plot_barrier([bc], tmp_path / "barrier2.png", c=C)
    p4 = plot_coercivity(coercivity_table(curves, c=C), tmp_path / "hc.png")
    for p in (p1, p2, p3, p4):
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_field_max_below_spinodal() -> None:
    res = coercivity(macrospin(), c=C, field_max=8.0)  # thermal H_c ~ 10, spinodal 20
    assert math.isnan(res.hc_spinodal) and math.isnan(res.hc_thermal)
    res = coercivity(macrospin(), c=C, field_max=15.0)
    assert math.isnan(res.hc_spinodal)
    assert res.hc_thermal == pytest.approx(2 * D * (1 - math.sqrt(C * T / D)), rel=1e-6)
