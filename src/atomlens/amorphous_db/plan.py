"""The plan of an amorphous database: compositions, MD settings, temperatures, seeds.

A plan is YAML validated by pydantic (unknown keys are refused; errors name the key).
Each (composition, temperature, seed) is one job; its settings (everything that
determines its result) are hashed into ``job_hash``, and the whole plan into ``plan_hash``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from atomlens.errors import DataError
from atomlens.files import safe_filename, to_strict_json


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MeltSettings(_Section):
    """The melt: NVT Langevin at ``temperature`` (K) for ``steps`` steps."""

    temperature: float = Field(5000.0, gt=0, allow_inf_nan=False)
    steps: int = Field(2000, ge=1)


class VolumeSettings(_Section):
    """Volume equilibration (Birch-Murnaghan P(V) at 0.8/1.0/1.2 V) after the melt."""

    enabled: bool = False
    steps: int = Field(300, ge=1)


class QuenchSettings(_Section):
    """An optional slow quench after the melt (chained stages; its end is kept as a file)."""

    temperatures: list[float] = Field(default_factory=list)
    steps: int = Field(1000, ge=1)

    @field_validator("temperatures")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        for value in values:
            if not (value > 0 and value < float("inf")):
                raise ValueError(f"temperatures must be finite and > 0 K, got {value}")
        return values


class AnnealSettings(_Section):
    """The anneal at each temperature, started from the melt: ``steps`` steps."""

    steps: int = Field(2000, ge=1)


class MDSettings(_Section):
    """Integrator settings shared by every stage."""

    timestep_fs: float = Field(2.0, gt=0, allow_inf_nan=False)
    segment_steps: int = Field(100, ge=1)
    interval: int = Field(10, ge=1)
    friction_per_fs: float = Field(0.01, gt=0, allow_inf_nan=False)


class PotentialSettings(_Section):
    """The potential: ``chgnet``, ``emt`` or ``package.module:Class`` (an ASE calculator).

    ``options`` are keyword arguments of ``Class``; ``device`` is where CHGNet runs and is
    not part of a job's identity.
    """

    name: str = "chgnet"
    options: dict[str, Any] = Field(default_factory=dict)
    device: str = "cpu"

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name in ("chgnet", "emt"):
            return name
        module, sep, attribute = name.partition(":")
        if not (sep and module and attribute):
            raise ValueError(f"use chgnet, emt or package.module:Class, got {name!r}")
        return name


class DiffusionSettings(_Section):
    """The diffusion analysis of each anneal: tracer D of ``species``."""

    species: str = "Li"
    skip_ps: float = Field(0.0, ge=0, allow_inf_nan=False)
    charge: float = Field(1.0, allow_inf_nan=False)


class CompositionLine(_Section):
    """Compositions between two end members: x A + (1 - x) B for each ``fractions`` x.

    ``between: [Li2O, SiO2]`` with ``fractions: [0.3333]`` gives Li2Si2O5 (x is rounded to
    a fraction with denominator <= ``max_denominator``; amounts become whole numbers).
    """

    between: tuple[str, str]
    fractions: list[float] = Field(min_length=1)
    max_denominator: int = Field(6, ge=1, le=24)

    @field_validator("fractions")
    @classmethod
    def _unit_interval(cls, values: list[float]) -> list[float]:
        for value in values:
            if not 0 < value < 1:
                raise ValueError(f"fractions must lie strictly between 0 and 1, got {value}")
        return values

    def formulas(self) -> list[str]:
        """The integer formulas of the line, in the order of ``fractions``."""
        from pymatgen.core import Composition

        first, second = (Composition(f) for f in self.between)
        out = []
        for value in self.fractions:
            x = Fraction(value).limit_denominator(self.max_denominator)
            mixed = first * x.numerator + second * (x.denominator - x.numerator)
            # pymatgen's order (by electronegativity), without amounts of 1: Li2SiO3
            tokens = mixed.formula.split()
            out.append("".join(t[:-1] if t[-1] == "1" and t[-2].isalpha() else t for t in tokens))
        return out


class Plan(_Section):
    """An amorphous database plan.

    Attributes:
        compositions: Formulas (e.g. ``Li2Si2O5``); ``composition_lines`` add more.
        atoms: Approximate atoms per cell (whole formula units).
        temperatures: Anneal temperatures in K (one job each, per composition and seed).
        seeds: Packing and MD seeds (one independent cell each).
    """

    compositions: list[str] = Field(default_factory=list)
    composition_lines: list[CompositionLine] = Field(default_factory=list)
    atoms: int = Field(100, ge=1)
    temperatures: list[float] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    melt: MeltSettings = Field(default_factory=MeltSettings)
    volume: VolumeSettings = Field(default_factory=VolumeSettings)
    quench: QuenchSettings = Field(default_factory=QuenchSettings)
    anneal: AnnealSettings = Field(default_factory=AnnealSettings)
    md: MDSettings = Field(default_factory=MDSettings)
    potential: PotentialSettings = Field(default_factory=PotentialSettings)
    diffusion: DiffusionSettings = Field(default_factory=DiffusionSettings)

    @field_validator("temperatures")
    @classmethod
    def _distinct_positive(cls, values: list[float]) -> list[float]:
        for value in values:
            if not (value > 0 and value < float("inf")):
                raise ValueError(f"temperatures must be finite and > 0 K, got {value}")
        whole = [int(v) for v in values]
        if len(set(whole)) != len(whole):
            raise ValueError(f"temperatures must differ in whole kelvins, got {values}")
        return values

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, values: list[int]) -> list[int]:
        if len(set(values)) != len(values) or min(values) < 0:
            raise ValueError(f"seeds must be distinct and >= 0, got {values}")
        return values

    @field_validator("compositions")
    @classmethod
    def _parsable(cls, values: list[str]) -> list[str]:
        for formula in values:
            _check_formula(formula)
        return values

    @model_validator(mode="after")
    def _has_compositions(self) -> Plan:
        formulas = self.formulas()
        if not formulas:
            raise ValueError("give compositions or composition_lines")
        if len(set(formulas)) != len(formulas):
            raise ValueError(f"compositions repeat: {formulas}")
        species = self.diffusion.species
        missing = [f for f in formulas if species not in _elements(f)]
        if missing:
            raise ValueError(f"diffusion.species {species!r} is not in {', '.join(missing)}")
        return self

    def formulas(self) -> list[str]:
        """Every composition of the plan: ``compositions``, then the lines'."""
        return [
            *self.compositions,
            *(f for line in self.composition_lines for f in line.formulas()),
        ]

    def plan_hash(self) -> str:
        """A short hash of everything in the plan (the potential's device excluded)."""
        return _digest(self._identity())

    def _identity(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["potential"].pop("device")
        return data

    def jobs(self) -> list[Job]:
        """One job per (temperature, composition, seed), temperature-major.

        That order starts different compositions (hence different melts) first, so
        parallel workers rarely wait for a melt another worker is running.
        """
        identity = self._identity()
        shared = {k: identity[k] for k in ("atoms", "md", "potential", "diffusion")}
        melt = {k: identity[k] for k in ("melt", "volume", "quench")}
        out = []
        for temperature in self.temperatures:
            for formula in self.formulas():
                for seed in self.seeds:
                    melt_settings = {"composition": formula, "seed": seed} | shared | melt
                    settings = melt_settings | {
                        "temperature_K": float(temperature),
                        "anneal": identity["anneal"],
                    }
                    job_id = safe_filename(f"{formula}_{temperature:g}K_seed{seed}", 120)
                    out.append(
                        Job(
                            job_id=job_id,
                            composition=formula,
                            temperature=float(temperature),
                            seed=seed,
                            settings=settings,
                            job_hash=_digest(settings),
                            melt_key=safe_filename(
                                f"{formula}_seed{seed}_{_digest(melt_settings)}", 120
                            ),
                        )
                    )
        return out


@dataclass(frozen=True)
class Job:
    """One (composition, temperature, seed) of a plan.

    Attributes:
        job_id: Readable and unique within a database, e.g. ``Li2Si2O5_1500K_seed0``.
        settings: Everything that determines the job's result, as plain JSON values.
        job_hash: Hash of ``settings``: the same id with another hash is another job.
        melt_key: Folder name of the melt it shares with the same composition and seed.
    """

    job_id: str
    composition: str
    temperature: float
    seed: int
    settings: dict[str, Any]
    job_hash: str
    melt_key: str


def _digest(value: Any) -> str:
    """16 base32 characters of the SHA-256 of canonical JSON (never read as a number)."""
    text = json.dumps(to_strict_json(value), sort_keys=True, separators=(",", ":"))
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16].lower()


def _elements(formula: str) -> set[str]:
    from pymatgen.core import Composition

    return {str(el) for el in Composition(formula)}


def _check_formula(formula: str) -> None:
    from atomlens.diffusion.amorphous import parse_composition

    try:
        parse_composition(formula, 1)
    except DataError as exc:
        raise ValueError(str(exc)) from None


def read_plan(path: Path | str) -> Plan:
    """Read and validate a plan file; errors name the file and the key."""
    from atomlens.yamlconfig import read_yaml_config, validate_model

    return validate_model(Plan, read_yaml_config(path), str(path))
