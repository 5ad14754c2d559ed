"""What every model config shares; each model's config subclasses it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class ModelConfigBase(BaseModel):
    """Fields every model config has: its registry ``name`` and the output activation."""

    model_config = ConfigDict(extra="forbid")

    name: str
    output_activation: Literal["none", "relu", "softplus"] = "none"

    def graph_defaults(self) -> dict[str, Any]:
        """Graph parameters this model wants (the config's ``data.graph`` wins over them)."""
        return {}
