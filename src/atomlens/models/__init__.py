"""Models: Batch -> dict of named outputs (``prediction``, ``atom_attention``, ...)."""

from __future__ import annotations

from typing import Any

from torch import nn

from atomlens.models.scann import Scann, ScannConfig
from atomlens.models.sen import Sen, SenConfig

ModelConfig = ScannConfig | SenConfig
MODEL_CONFIGS: dict[str, type[ScannConfig] | type[SenConfig]] = {
    "scann": ScannConfig,
    "sen": SenConfig,
}

__all__ = [
    "MODEL_CONFIGS",
    "ModelConfig",
    "Scann",
    "ScannConfig",
    "Sen",
    "SenConfig",
    "build_model",
    "graph_spec",
]


def build_model(cfg: ModelConfig) -> nn.Module:
    """The network a model config describes."""
    return Sen(cfg) if isinstance(cfg, SenConfig) else Scann(cfg)


def graph_spec(cfg: ModelConfig, overrides: dict[str, Any] | None = None) -> tuple[str, dict]:
    """Graph kind and parameters a model reads: Voronoi for SCANN, a cutoff graph for SEN.

    Args:
        cfg: The model config.
        overrides: The config's ``data.graph`` entries (they win over the model's).
    """
    overrides = dict(overrides or {})
    if isinstance(cfg, SenConfig):
        defaults = {"cutoff": cfg.cutoff, "widen": True, "symmetry": cfg.symmetry}
        return "cutoff", defaults | overrides
    return "voronoi", overrides
