"""Building blocks on flat batches: segment softmax/sum, Gaussian expansions. Native torch.

Gathers use ``index_select`` rather than advanced indexing (``x[index]``): the forward is
the same, but its backward is a fast ``index_add_`` instead of ``index_put_`` with
accumulation, which dominated the backward pass of SCANN on CPU.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def gather(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``values[index]`` (along dim 0), with a scatter-add backward.

    Args:
        values: (N, ...) tensor.
        index: (M,) long indices into the first dimension of ``values``.

    Returns:
        (M, ...) tensor equal to ``values[index]``.
    """
    return values.index_select(0, index)


def segment_sum(values: torch.Tensor, segment: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Sum rows of ``values`` that share a segment id (rows with id k go to output row k)."""
    out = values.new_zeros((n_segments, *values.shape[1:]))
    return out.index_add_(0, segment, values)


def segment_max(values: torch.Tensor, segment: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Per-segment maximum of the rows of ``values`` (-inf for empty segments); no gradient.

    On CPU, sorted segment ids (edges sorted by centre, atoms by graph, as in a Batch)
    take ``torch.segment_reduce``, several times faster there than the general
    ``scatter_reduce`` used otherwise.
    """
    values = values.detach()
    on_cpu = values.device.type == "cpu" and segment.numel() > 0
    if on_cpu and bool((segment[1:] >= segment[:-1]).all()):
        lengths = torch.bincount(segment, minlength=n_segments)
        if lengths.numel() == n_segments:
            return torch.segment_reduce(values, "max", lengths=lengths, axis=0)
    index = segment.view(-1, *([1] * (values.dim() - 1))).expand_as(values)
    out = values.new_full((n_segments, *values.shape[1:]), float("-inf"))
    return out.scatter_reduce(0, index, values, reduce="amax", include_self=True)


def segment_softmax(logits: torch.Tensor, segment: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Softmax over the rows of each segment, per column; numerically stable (max-shifted).

    Segments need not be sorted. Half-precision logits (float16, bfloat16, e.g. under
    ``torch.autocast``) are shifted, exponentiated and normalised in float32, and the
    weights are returned in the logits' dtype.

    Args:
        logits: (M,) or (M, H) scores.
        segment: (M,) segment id of each row, in [0, n_segments).
        n_segments: number of segments.

    Returns:
        Weights of the same shape and dtype as ``logits`` that sum to 1 within each segment.
    """
    dtype = logits.dtype
    x = logits.float() if dtype in _LOW_PRECISION else logits
    shifted = torch.exp(x - gather(segment_max(x.detach(), segment, n_segments), segment))
    totals = segment_sum(shifted, segment, n_segments)
    return (shifted / gather(totals, segment)).to(dtype)


class _EdgeAttention(torch.autograd.Function):
    """Forward and hand-written backward of :func:`edge_attention` (see there)."""

    @staticmethod
    def forward(
        ctx: Any, q: torch.Tensor, k: torch.Tensor, centers: torch.Tensor, n_atoms: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.set_materialize_grads(False)
        n_edges, heads, head_dim = k.shape
        q_edge = q.index_select(0, centers)
        # Sums over the head dimension as matrix-vector products: much faster on CPU than
        # .sum(-1) over a short innermost dimension. The 1/sqrt(head_dim) goes in the vector.
        scaled_ones = k.new_full((head_dim,), 1.0 / math.sqrt(head_dim))
        product = q_edge * k
        logits = product.view(-1, head_dim).mv(scaled_ones).view(n_edges, heads)
        weights = segment_softmax(logits, centers, n_atoms)
        weighted = torch.mul(k, weights.unsqueeze(-1), out=product)
        attended = segment_sum(weighted, centers, n_atoms)
        ctx.save_for_backward(q_edge, k, weights, centers)
        ctx.n_atoms = n_atoms
        return attended, weights

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_attended: torch.Tensor | None, grad_weights: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        q_edge, k, weights, centers = ctx.saved_tensors
        n_edges, heads, head_dim = k.shape
        ones = k.new_ones(head_dim)
        scratch = torch.empty_like(k)  # reused for two (E, H, hd) temporaries
        if grad_attended is None:
            grad_k = torch.zeros_like(k)
            grad_w = torch.zeros_like(weights)
        else:
            grad_k = grad_attended.index_select(0, centers)  # (E, H, hd), our own buffer
            torch.mul(grad_k, k, out=scratch)
            grad_w = scratch.view(-1, head_dim).mv(ones).view(n_edges, heads)
            grad_k.mul_(weights.unsqueeze(-1))
        if grad_weights is not None:
            grad_w = grad_w + grad_weights
        # Softmax backward within each segment, then the 1/sqrt(head_dim) of the logits.
        wg = weights * grad_w
        totals = segment_sum(wg, centers, ctx.n_atoms).index_select(0, centers)
        grad_logits = (wg - weights * totals) / math.sqrt(head_dim)
        grad_q = None
        if ctx.needs_input_grad[0]:
            torch.mul(k, grad_logits.unsqueeze(-1), out=scratch)
            grad_q = segment_sum(scratch, centers, ctx.n_atoms)
        grad_k.addcmul_(q_edge, grad_logits.unsqueeze(-1))
        return grad_q, grad_k, None, None


def edge_attention(
    q: torch.Tensor, k: torch.Tensor, centers: torch.Tensor, n_atoms: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head attention of each atom over its edges, with a fused backward.

    Equal to ``w = segment_softmax((q[centers] * k).sum(-1) / sqrt(hd), centers, n)``
    and ``attended = segment_sum(w[..., None] * k, centers, n)``, but the backward pass is
    written out (fewer passes over the (E, H, hd) tensors than autograd's). Not twice
    differentiable.

    Args:
        q: (N, H, hd) queries of the atoms.
        k: (E, H, hd) keys (also the values) of the edges.
        centers: (E,) centre atom of each edge.
        n_atoms: N.

    Returns:
        ``attended`` (N, H, hd) and the attention weights ``w`` (E, H).
    """
    if q.dtype != k.dtype:  # e.g. mixed under autocast: compute in the wider type
        dtype = torch.promote_types(q.dtype, k.dtype)
        q, k = q.to(dtype), k.to(dtype)
    return _EdgeAttention.apply(q, k, centers, n_atoms)


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
