"""The ``atomlens coercivity`` configuration: a YAML file validated by pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from atomlens.yamlconfig import read_yaml_config, validate_model


class SpinModelConfig(BaseModel):
    """Which spin model to build; ``params`` go to the builder as keyword arguments.

    Kinds: ``simple_cubic`` (:func:`atomlens.spins.lattice.simple_cubic_grain`),
    ``two_sublattice`` (:func:`atomlens.spins.lattice.two_sublattice_grain`), ``nd2fe14b``
    (:func:`atomlens.spins.nd2fe14b.nd2fe14b_grain`).
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["simple_cubic", "two_sublattice", "nd2fe14b"]
    params: dict[str, Any] = Field(default_factory=dict)


class SamplingConfig(BaseModel):
    """Replica-exchange Wang-Landau in M at each temperature."""

    model_config = ConfigDict(extra="forbid")

    bins: int = Field(64, ge=8, description="bins of M over [-M_s, M_s]")
    m_max: float | Literal["auto"] = Field(
        "auto",
        description="sample |M| <= m_max M_s; auto: m_eq + 4.5 sigma_m from a Metropolis run "
        "(nearly saturated states are too rarely hit to flatten)",
    )

    @field_validator("m_max")
    @classmethod
    def _fraction(cls, value: float | str) -> float | str:
        if value != "auto" and not 0 < float(value) <= 1:
            raise ValueError("m_max must be 'auto' or lie in (0, 1]")
        return value

    extend_range: int = Field(
        2, ge=0, description="rerun with a wider |m| range when F still falls at its edge"
    )
    mirror: bool = Field(
        True, description="sample M >= 0 only and use F(-M) = F(M) (exact without a field)"
    )
    windows: int = Field(4, ge=1)
    walkers_per_window: int = Field(2, ge=1)
    overlap: float = Field(0.75, gt=0, lt=1)
    flatness: float = Field(0.8, gt=0, lt=1)
    lnf_final: float = Field(1e-5, gt=0, lt=1)
    one_over_t: bool = True
    step_size: float = Field(0.5, ge=0)
    sweeps_per_check: float = Field(10.0, gt=0)
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    checkpoint_every: float = Field(30.0, gt=0, description="seconds between checkpoints")
    max_seconds: float | None = Field(None, gt=0, description="per temperature; resumable")


class CoercivityConfig(BaseModel):
    """Everything ``atomlens coercivity`` needs."""

    model_config = ConfigDict(extra="forbid")

    out: str = "runs/coercivity"
    model: SpinModelConfig
    temperatures: list[float] = Field(min_length=1)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    criterion_c: float = Field(25.0, gt=0, description="thermal activation: dF(H_c) = c k_B T")
    smoothing: int | None = Field(None, ge=0, description="smoothing window of F(M), bins")
    plot_fields: int = Field(6, ge=2, description="fields in each F_H(M) family figure")

    @field_validator("temperatures")
    @classmethod
    def _positive_sorted(cls, values: list[float]) -> list[float]:
        if any(not t > 0 for t in values):
            raise ValueError("every temperature must be positive")
        if len(set(values)) != len(values):
            raise ValueError("temperatures must be distinct")
        return sorted(values)


def load_coercivity_config(
    path: Path | str, overrides: list[str] | None = None
) -> CoercivityConfig:
    """Read and validate a coercivity config; errors name the file and the bad keys."""
    return validate_model(CoercivityConfig, read_yaml_config(path, overrides), str(path))
