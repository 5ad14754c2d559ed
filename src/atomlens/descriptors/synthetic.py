"""A realistic synthetic diffusivity table (for tests, benchmarks and trying the tools).

Shaped like the paper's data: compositions, each at several temperatures, with 43 features
(1/kBT, Li neighbour count, Li fraction, 20 composition-level and 20 structure-level
descriptors) and ln D from an Arrhenius law whose prefactor carries a composition-specific
part that no feature explains. A model that has seen the same composition at another
temperature can memorise that part; that is the leak of a random row split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from atomlens.units import KB_EV

TEMPERATURES = (1000.0, 1500.0, 2000.0, 2500.0)


def diffusivity_table(
    n_compositions: int = 207,
    temperatures: tuple[float, ...] = TEMPERATURES,
    composition_effect: float = 0.5,
    noise: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Rows of (composition, temperature) with features and ``lnD``.

    ln D = -4.662 - Ea * (1/kBT) - 0.0822 LNC + 1.3305 Li_frac + u_comp + noise, with
    Ea = 0.339 + 0.03 (LNC - 5) and u_comp ~ N(0, composition_effect).
    """
    rng = np.random.default_rng(seed)
    n_latent = 4
    latent = rng.normal(size=(n_compositions, n_latent))
    li = rng.uniform(0.05, 0.6, n_compositions)
    lnc = rng.uniform(2.0, 8.0, n_compositions)
    effect = rng.normal(0.0, composition_effect, n_compositions)
    basis = np.column_stack([li, lnc / 8, latent])
    comp_features = basis @ rng.normal(size=(basis.shape[1], 20)) + 0.05 * rng.normal(
        size=(n_compositions, 20)
    )
    struct_mix = rng.normal(size=(basis.shape[1], 20))
    rows = []
    for c in range(n_compositions):
        for temperature in temperatures:
            b = 1.0 / (KB_EV * temperature)
            ea = 0.339 + 0.03 * (lnc[c] - 5.0)
            ln_d = -4.662 - ea * b - 0.0822 * lnc[c] + 1.3305 * li[c] + effect[c]
            ln_d += rng.normal(0.0, noise)
            structural = basis[c] @ struct_mix + 0.2 * rng.normal(size=20)
            row = {
                "id": f"comp{c:03d}_T{int(temperature)}",
                "composition": f"comp{c:03d}",
                "temperature": temperature,
                "inv_kBT": b,
                "LNC": lnc[c] + 0.1 * rng.normal(),
                "Li_frac": li[c],
            }
            row |= {f"comp_{k}": comp_features[c, k] for k in range(20)}
            row |= {f"struct_{k}": structural[k] for k in range(20)}
            row["lnD"] = ln_d
            rows.append(row)
    return pd.DataFrame(rows)
