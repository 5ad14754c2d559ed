"""The model registry: each model's name, config, network, graph and capabilities, once.

A new model is one file (config class + network taking a Batch) and one line in
``MODELS``. The CLI, the benchmark runner, training and explain read these entries and
their capabilities; none of them names a model.

Capabilities:
    atom_attention: outputs ``atom_attention`` (N,), summing to 1 per structure.
    local_attention: ``forward(..., return_local_attention=True)`` adds per-layer (E, H)
        weights under ``local_attention``.
    readout_mask: ``forward(..., readout_mask=...)`` leaves atoms out of the pooling.
    capsules: outputs ``capsule_presence``, ``capsule_pose``, ``capsule_matrix``.
    needs_symmetry: reads the graphs' symmetry fields unless its config sets
        ``symmetry: false``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from atomlens.errors import DataError
from atomlens.models.base import ModelConfigBase
from atomlens.models.scann import Scann, ScannConfig
from atomlens.models.sen import Sen, SenConfig

CAPABILITIES = frozenset(
    {"atom_attention", "local_attention", "readout_mask", "capsules", "needs_symmetry"}
)


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Attributes:
        name: The value of ``model.name`` in a config.
        config: Its pydantic config class.
        network: Its torch module class, built as ``network(config)``.
        graph_kind: The graph it reads (``voronoi`` or ``cutoff``); parameters come from
            ``config.graph_defaults()`` and the run's ``data.graph``.
        capabilities: What it can do, from ``CAPABILITIES``.
        summary: One line for listings.
        atom_embedding: Name of the submodule whose output is the (N, d) per-atom input
            embedding; the gradient attributions of :mod:`atomlens.explain.attribution`
            hook it.
    """

    name: str
    config: type[ModelConfigBase]
    network: type[nn.Module]
    graph_kind: str
    capabilities: frozenset[str]
    summary: str
    atom_embedding: str = "embedding"

    def __post_init__(self) -> None:
        unknown = self.capabilities - CAPABILITIES
        if unknown:
            raise ValueError(f"model '{self.name}': unknown capabilities {sorted(unknown)}")

    def can(self, capability: str) -> bool:
        """True when the model has ``capability``."""
        return capability in self.capabilities


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "scann",
            ScannConfig,
            Scann,
            "voronoi",
            frozenset({"atom_attention", "local_attention", "readout_mask"}),
            "SCANN / SCANN+: local attention over Voronoi neighbours, global atom attention",
        ),
        ModelSpec(
            "sen",
            SenConfig,
            Sen,
            "cutoff",
            frozenset({"atom_attention", "readout_mask", "capsules", "needs_symmetry"}),
            "SEN: symmetry-enhanced crystal capsule network on cutoff graphs",
        ),
    )
}


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name`` (a clear error for an unknown name)."""
    if name not in MODELS:
        raise DataError(f"unknown model '{name}'; choose from {', '.join(sorted(MODELS))}")
    return MODELS[name]


def spec_of(cfg: ModelConfigBase) -> ModelSpec:
    """The registry entry of a model config (checked to be that entry's config class)."""
    spec = model_spec(cfg.name)
    if not isinstance(cfg, spec.config):
        raise DataError(
            f"model config of type {type(cfg).__name__} is not the config of model '{cfg.name}'"
        )
    return spec


def require(cfg: ModelConfigBase, capability: str, what: str) -> None:
    """Raise a DataError saying that ``what`` needs a capability the model lacks."""
    spec = spec_of(cfg)
    if not spec.can(capability):
        having = [s.name for s in MODELS.values() if s.can(capability)]
        raise DataError(
            f"{what} needs a model with {capability.replace('_', ' ')}; model '{spec.name}' "
            f"has none (models that do: {', '.join(having) or 'none'})"
        )


def build_model(cfg: ModelConfigBase) -> nn.Module:
    """The network a model config describes."""
    return spec_of(cfg).network(cfg)


def graph_spec(cfg: ModelConfigBase, overrides: dict[str, Any] | None = None) -> tuple[str, dict]:
    """Graph kind and parameters a model reads.

    Args:
        cfg: The model config.
        overrides: The config's ``data.graph`` entries (they win over the model's).
    """
    return spec_of(cfg).graph_kind, cfg.graph_defaults() | dict(overrides or {})
