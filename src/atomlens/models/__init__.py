"""Models: Batch -> dict of named outputs (``prediction``, ``atom_attention``, ...).

Which models exist, and what each can do, is declared once in :mod:`atomlens.models.registry`.
"""

from __future__ import annotations

from atomlens.models.base import ModelConfigBase
from atomlens.models.registry import (
    MODELS,
    ModelSpec,
    build_model,
    graph_spec,
    model_spec,
    require,
    spec_of,
)
from atomlens.models.scann import Scann, ScannConfig
from atomlens.models.sen import Sen, SenConfig

__all__ = [
    "MODELS",
    "ModelConfigBase",
    "ModelSpec",
    "Scann",
    "ScannConfig",
    "Sen",
    "SenConfig",
    "build_model",
    "graph_spec",
    "model_spec",
    "require",
    "spec_of",
]
