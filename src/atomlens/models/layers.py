"""Building blocks on flat batches: segment softmax/sum, Gaussian expansions. Native torch."""

from __future__ import annotations

import torch
from torch import nn


def segment_sum(values: torch.Tensor, segment: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Sum rows of ``values`` that share a segment id (rows with id k go to output row k)."""
    out = values.new_zeros((n_segments, *values.shape[1:]))
    return out.index_add_(0, segment, values)


def segment_softmax(logits: torch.Tensor, segment: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Softmax over the rows of each segment, per column; numerically stable (max-shifted).

    Args:
        logits: (M,) or (M, H) scores.
        segment: (M,) segment id of each row, in [0, n_segments).
        n_segments: number of segments.

    Returns:
        Weights of the same shape as ``logits`` that sum to 1 within each segment.
    """
    shape = (n_segments, *logits.shape[1:])
    index = segment.view(-1, *([1] * (logits.dim() - 1))).expand_as(logits)
    maxima = logits.new_full(shape, float("-inf")).scatter_reduce(
        0, index, logits, reduce="amax", include_self=True
    )
    shifted = torch.exp(logits - maxima.detach()[segment])
    totals = segment_sum(shifted, segment, n_segments)
    return shifted / totals[segment]


class GaussianExpansion(nn.Module):
    """exp(-(x - mu_k)^2 / width^2) on ``n`` centres evenly spaced in [start, stop]."""

    def __init__(self, start: float, stop: float, n: int = 20, width: float = 0.5):
        super().__init__()
        self.register_buffer("centres", torch.linspace(start, stop, n))
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expand (E,) values into (E, n) features."""
        return torch.exp(-((x.unsqueeze(-1) - self.centres) ** 2) / self.width**2)


def output_activation(y: torch.Tensor, kind: str) -> torch.Tensor:
    """The configured output activation: ``none``, ``relu`` or ``softplus``."""
    if kind == "relu":
        return torch.relu(y)
    if kind == "softplus":
        return torch.nn.functional.softplus(y)
    return y
