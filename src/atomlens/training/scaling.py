"""Target scaling from the training split."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Scaling:
    """Target scaling from the training split: model output * std + mean = value."""

    mean: float
    std: float

    def to_scaled(self, y: torch.Tensor) -> torch.Tensor:
        """Physical units -> model units."""
        return (y - self.mean) / self.std

    def to_physical(self, y: torch.Tensor) -> torch.Tensor:
        """Model units -> physical units."""
        return y * self.std + self.mean
