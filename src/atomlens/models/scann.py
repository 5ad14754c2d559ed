"""SCANN and SCANN+: local attention over Voronoi neighbours, global attention per atom.

Vu et al., npj Comput. Mater. 9, 215 (2023); notation in docs/science-scann.md.
The per-atom global attention ``atom_attention`` sums to 1 over each structure.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import ConfigDict, Field
from torch import nn
from torch.nn import functional as F  # noqa: N812

from atomlens.batching import Batch
from atomlens.models.base import ModelConfigBase
from atomlens.models.layers import (
    GaussianExpansion,
    edge_attention,
    gather,
    output_activation,
    segment_softmax,
    segment_sum,
)

N_ELEMENTS = 119


class ScannConfig(ModelConfigBase):
    """Hyper-parameters of SCANN (defaults: the reference's QM9 configuration)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["scann"] = "scann"
    variant: Literal["scann", "scann_plus"] = "scann_plus"
    embedding_dim: int = Field(48, gt=0)
    local_dim: int = Field(128, gt=0)
    n_layers: int = Field(6, ge=1)
    n_heads: int = Field(8, ge=1)
    ffn_dim: int = Field(256, gt=0)
    global_dim: int = Field(128, gt=0)
    readout_dim: int = Field(128, gt=0)
    n_gaussians: int = Field(20, ge=2)
    max_distance: float = Field(4.0, gt=0, description="d_t: range of the distance expansion")
    dropout: float = Field(0.1, ge=0, lt=1)
    normalize_logits: bool = Field(
        True, description="paper mode: divide the scores by their norm over the structure"
    )
    global_attention: Literal["paper", "size_consistent"] = Field(
        "paper",
        description="paper: score_i = K_i . sum_{j != i} Q_j (changes with the supercell); "
        "size_consistent: score_i = K_i . mean_j Q_j / sqrt(d) (a supercell gives the same "
        "prediction, attention / n_cells)",
    )


class LocalAttention(nn.Module):
    """One local attention layer: keys double as values, post-LN feed-forward."""

    def __init__(self, cfg: ScannConfig):
        super().__init__()
        d, self.heads = cfg.local_dim, cfg.n_heads
        if d % self.heads:
            raise ValueError(f"local_dim {d} is not divisible by n_heads {self.heads}")
        self.plus = cfg.variant == "scann_plus"
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.edge_update = nn.Linear(3 * d, d) if self.plus else nn.Linear(cfg.n_gaussians, d)
        self.edge_norm = nn.LayerNorm(d) if self.plus else None
        self.attn_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.ffn_dim), nn.SiLU(), nn.Linear(cfg.ffn_dim, d))
        self.ffn_dropout = nn.Dropout(cfg.dropout)
        self.ffn_norm = nn.LayerNorm(d)

    def forward(
        self,
        h: torch.Tensor,
        edge: torch.Tensor,
        centers: torch.Tensor,
        neighbors: torch.Tensor,
        ratio: torch.Tensor,
        rbf_distance: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Update atom states; returns (h, edge state, attention weights (E, H))."""
        n_atoms, d = h.shape
        head_dim = d // self.heads
        if self.plus:
            update = self._edge_update(h, edge, centers, neighbors)
            edge = self.edge_norm(F.silu(update).add_(edge))  # silu's backward needs its input only
            gate = edge
        else:
            gate = F.silu(self.edge_update(rbf_distance)) * ratio.unsqueeze(-1)
        q = self.query(h)
        k = self.key(gather(h, neighbors) * gate).view(-1, self.heads, head_dim)
        attended, weights = edge_attention(
            q.view(n_atoms, self.heads, head_dim), k, centers, n_atoms
        )
        attended = attended.view(n_atoms, d)
        u = self.attn_norm(attended + q)
        h = self.ffn_norm(u + self.ffn_dropout(self.ffn(u)))
        return h, edge, weights

    def _edge_update(
        self, h: torch.Tensor, edge: torch.Tensor, centers: torch.Tensor, neighbors: torch.Tensor
    ) -> torch.Tensor:
        """SCANN+'s ``edge_update(cat[h[centers], edge, h[neighbors]])``, (E, d).

        Computed without the (E, 3d) input: the (d, 3d) weight is applied block by block,
        the two atom blocks and the bias per atom (one (N, d) x (d, 2d) matmul) before the
        gather, and only the edge block per edge, accumulated in place. Same parameter,
        same result up to float rounding, half the per-edge matmul work.
        """
        d = h.shape[1]
        weight, bias = self.edge_update.weight, self.edge_update.bias
        atom_weight = torch.cat([weight[:, :d], weight[:, 2 * d :]])
        atoms = F.linear(h, atom_weight, torch.cat([bias, torch.zeros_like(bias)]))  # (N, 2d)
        update = gather(atoms[:, :d], centers).add_(gather(atoms[:, d:], neighbors))
        # In-place ops are not autocast: cast like F.linear would under torch.autocast.
        edge_weight = weight[:, d : 2 * d].to(update.dtype)
        return update.addmm_(edge.to(update.dtype), edge_weight.t())


class Scann(nn.Module):
    """SCANN / SCANN+ on flat batches.

    ``forward(batch)`` returns ``{"prediction": (B,), "atom_attention": (N,),
    "crystal_vector": (B, global_dim)}`` and, when asked, ``"local_attention"``: one (E, H)
    tensor per layer.
    """

    def __init__(self, cfg: ScannConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ScannConfig()
        self.embedding = nn.Embedding(N_ELEMENTS, cfg.embedding_dim)
        self.atom_in = nn.Sequential(
            nn.Linear(cfg.embedding_dim, cfg.local_dim), nn.SiLU(), nn.Dropout(cfg.dropout)
        )
        self.rbf_distance = GaussianExpansion(0.0, cfg.max_distance, cfg.n_gaussians)
        self.rbf_angle = GaussianExpansion(0.0, 2 * math.pi, cfg.n_gaussians)
        if cfg.variant == "scann_plus":
            self.edge_distance = nn.Linear(cfg.n_gaussians, cfg.local_dim)
            self.edge_angle = nn.Linear(cfg.n_gaussians, cfg.local_dim)
        self.layers = nn.ModuleList(LocalAttention(cfg) for _ in range(cfg.n_layers))
        self.global_in = nn.Linear(cfg.local_dim, cfg.global_dim)
        self.global_query = nn.Linear(cfg.global_dim, cfg.global_dim)
        self.global_key = nn.Linear(cfg.global_dim, cfg.global_dim)
        self.readout = nn.Linear(cfg.global_dim, cfg.readout_dim)
        self.out = nn.Linear(cfg.readout_dim, 1)

    def forward(
        self,
        batch: Batch,
        return_local_attention: bool = False,
        readout_mask: torch.Tensor | None = None,
    ) -> dict:
        """Predict one value per structure and the per-atom global attention.

        Args:
            batch: The structures.
            return_local_attention: Also return each layer's (E, H) local attention.
            readout_mask: Optional (N,) bool; atoms set to False are left out of the global
                attention pooling (their attention becomes 0). Each structure must keep one.
        """
        cfg = self.cfg
        centers, neighbors = batch.centers, batch.neighbors
        h = self.atom_in(self.embedding(batch.numbers))
        rbf_d = self.rbf_distance(batch.distance)
        edge = torch.empty(0)
        if cfg.variant == "scann_plus":
            rbf_a = self.rbf_angle(batch.solid_angle)
            edge = F.silu(self.edge_distance(rbf_d)) * F.silu(self.edge_angle(rbf_a))
        local = []
        for layer in self.layers:
            h, edge, weights = layer(h, edge, centers, neighbors, batch.solid_angle_ratio, rbf_d)
            local.append(weights)

        n_graphs = batch.num_graphs
        graph = batch.graph_index
        t = F.silu(self.global_in(h))
        q, k = self.global_query(t), self.global_key(t)
        scores = self._global_scores(q, k, graph, n_graphs)
        if readout_mask is not None:
            scores = scores.masked_fill(~readout_mask, float("-inf"))
        alpha = segment_softmax(scores, graph, n_graphs)
        z = segment_sum(alpha.unsqueeze(-1) * k, graph, n_graphs)
        y = self.out(F.silu(self.readout(z))).squeeze(-1)
        y = output_activation(y, cfg.output_activation)
        result = {"prediction": y, "atom_attention": alpha, "crystal_vector": z}
        if return_local_attention:
            result["local_attention"] = local
        return result

    def _global_scores(
        self, q: torch.Tensor, k: torch.Tensor, graph: torch.Tensor, n_graphs: int
    ) -> torch.Tensor:
        """Global attention logits (N,), in O(N d).

        ``paper`` (the reference): ``K_i . sum_{j != i} Q_j``, divided by the norm of the
        structure's scores when ``normalize_logits``. The sum grows with the number of atoms
        and the norm runs over all of them, so a supercell of the same crystal gets flatter
        attention and another prediction. ``size_consistent``: ``K_i . mean_j Q_j / sqrt(d)``;
        the mean is the same for a cell and any supercell, so every copy of an atom gets the
        same score, attention per atom scales by exactly 1 / n_cells and the pooled vector,
        hence the prediction, is unchanged.
        """
        q_total = segment_sum(q, graph, n_graphs)
        if self.cfg.global_attention == "size_consistent":
            n_atoms = torch.bincount(graph, minlength=n_graphs).to(q_total.dtype)
            q_mean = q_total / n_atoms.unsqueeze(-1)
            return (k * gather(q_mean, graph)).sum(-1) / math.sqrt(q.shape[-1])
        scores = (k * (gather(q_total, graph) - q)).sum(-1)  # sum over j != i of K_i . Q_j
        if self.cfg.normalize_logits:
            norms = segment_sum(scores**2, graph, n_graphs).clamp_min(1e-12).sqrt()
            scores = scores / gather(norms, graph)
        return scores
