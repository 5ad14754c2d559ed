"""SEN: the symmetry-enhanced crystal capsule network, deterministic and per-sample.

Liang et al., Nat. Commun. 14, 5198 (2023); the reference's defects and our departures are
listed in docs/science-sen.md. Flow per crystal:

    cutoff graph (5 A) -> 100 Gaussians -> 3 MEGNet blocks (edge, node, global state)
    formula -> Roost-style weighted attention over its elements (3 steps) -> c
    Set2Set over atoms and over edges, fused with c and the global state -> r -> z
    z as a 16x16 image -> 4 convolutions -> part capsules: 2-D affine pose (6), feature
    (16), presence -> two convolutions over the poses -> D (16 x 6) -> linear head -> y

The optional symmetry stream (space group, crystal system, site-symmetry order and Wyckoff
multiplicity of each atom) enters the atom embeddings and the initial global state.
Cross-sample attention is a training-time option: at inference each crystal attends only
to itself, so a prediction never depends on its batch-mates; presence noise is added only
in training.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import ConfigDict, Field
from torch import nn
from torch.nn import functional as F  # noqa: N812

from atomlens.batching import Batch
from atomlens.errors import DataError
from atomlens.models.base import ModelConfigBase
from atomlens.models.layers import (
    GaussianExpansion,
    output_activation,
    segment_softmax,
    segment_sum,
)
from atomlens.structures.symmetry import CRYSTAL_SYSTEMS, SITE_ORDERS, SYSTEM_ENDS

N_ELEMENTS = 119
N_CAPSULES = 16
POSE_SIZE = 6  # a 2-D affine transform: 2 x 3


class SenConfig(ModelConfigBase):
    """Hyper-parameters of SEN (defaults sized for a CPU; the reference uses width 192)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["sen"] = "sen"
    cutoff: float = Field(5.0, gt=0, description="radius of the crystal graph in Angstrom")
    width: int = Field(64, gt=0, description="width of the MEGNet blocks")
    n_blocks: int = Field(3, ge=1)
    n_gaussians: int = Field(100, ge=2)
    max_distance: float = Field(6.0, gt=0, description="range of the distance expansion")
    gaussian_width: float = Field(0.5, gt=0)
    residual_weight: float = Field(0.6, ge=0, description="weight of the skip path per block")
    composition_dim: int = Field(64, gt=0)
    composition_steps: int = Field(3, ge=1)
    set2set_steps: int = Field(3, ge=1)
    crystal_dim: int = Field(256, description="size of the crystal vector z (a 16x16 image)")
    capsule_features: int = Field(16, gt=0)
    conv_channels: int = Field(32, gt=0)
    head_dim: int = Field(64, gt=0)
    symmetry: bool = Field(True, description="use the symmetry stream (False: the ablation)")
    symmetry_dim: int = Field(16, gt=0)
    cross_attention: bool = Field(False, description="attention across the batch (training)")
    presence_noise: float = Field(4.0, ge=0, description="width of uniform logit noise")
    dropout: float = Field(0.0, ge=0, lt=1)

    def graph_defaults(self) -> dict[str, Any]:
        """A cutoff graph of ``cutoff`` (widened for isolated atoms), with symmetry if used."""
        return {"cutoff": self.cutoff, "widen": True, "symmetry": self.symmetry}

    def model_post_init(self, _context: object) -> None:
        """Check that z can be viewed as a square image."""
        if self.crystal_dim != 256:
            raise ValueError("crystal_dim must be 256 (z is viewed as a 16 x 16 image)")


class GatedMLP(nn.Module):
    """``silu(W1 x) * sigmoid(W2 x)`` then a linear layer: the gated update of each block."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.core = nn.Linear(n_in, n_out)
        self.gate = nn.Linear(n_in, n_out)
        self.out = nn.Linear(n_out, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gated two-layer update."""
        return self.out(F.silu(self.core(x)) * torch.sigmoid(self.gate(x)))


class MegnetBlock(nn.Module):
    """Edge, node and global-state updates with weighted residual connections.

    The edge update is a gated MLP of ``[h_i, h_j, e_ij, u]``. Its first layer is applied
    piece by piece (atoms and states before the gather), which is the same linear map at a
    fraction of the per-edge cost.
    """

    def __init__(self, width: int, residual_weight: float):
        super().__init__()
        self.edge_center = nn.Linear(width, 2 * width)
        self.edge_neighbor = nn.Linear(width, 2 * width, bias=False)
        self.edge_self = nn.Linear(width, 2 * width, bias=False)
        self.edge_state = nn.Linear(width, 2 * width, bias=False)
        self.edge_out = nn.Linear(width, width)
        self.node = GatedMLP(3 * width, width)
        self.state = GatedMLP(3 * width, width)
        self.residual_weight = residual_weight

    def forward(
        self,
        h: torch.Tensor,
        e: torch.Tensor,
        u: torch.Tensor,
        centers: torch.Tensor,
        neighbors: torch.Tensor,
        graph: torch.Tensor,
        edge_graph: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One block; returns updated (atoms, edges, global state)."""
        n_atoms, n_graphs = h.shape[0], u.shape[0]
        first = (
            self.edge_center(h)[centers]
            + self.edge_neighbor(h)[neighbors]
            + self.edge_self(e)
            + self.edge_state(u)[edge_graph]
        )
        core, gate = first.chunk(2, dim=-1)
        e_new = self.edge_out(F.silu(core) * torch.sigmoid(gate))
        h_new = self.node(torch.cat([h, _mean(e_new, centers, n_atoms), u[graph]], -1))
        u_new = self.state(
            torch.cat([_mean(e_new, edge_graph, n_graphs), _mean(h_new, graph, n_graphs), u], -1)
        )
        w = self.residual_weight
        return h_new + w * h, e_new + w * e, u_new + w * u


def _mean(values: torch.Tensor, segment: torch.Tensor, n: int) -> torch.Tensor:
    counts = segment_sum(torch.ones_like(segment, dtype=values.dtype), segment, n)
    return segment_sum(values, segment, n) / counts.clamp_min(1).unsqueeze(-1)


class Set2Set(nn.Module):
    """Set2Set pooling (Vinyals et al. 2016) over segments; also returns the last weights."""

    def __init__(self, dim: int, steps: int):
        super().__init__()
        self.steps = steps
        self.lstm = nn.LSTMCell(2 * dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        segment: torch.Tensor,
        n_segments: int,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool rows of ``x`` per segment into (n_segments, 2 dim); weights (rows,)."""
        dim = x.shape[1]
        q_star = x.new_zeros(n_segments, 2 * dim)
        state = (x.new_zeros(n_segments, dim), x.new_zeros(n_segments, dim))
        weights = x.new_zeros(x.shape[0])
        for _ in range(self.steps):
            state = self.lstm(q_star, state)
            query = state[0]
            scores = (x * query[segment]).sum(-1)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = segment_softmax(scores, segment, n_segments)
            read = segment_sum(weights.unsqueeze(-1) * x, segment, n_segments)
            q_star = torch.cat([query, read], -1)
        return q_star, weights


class CompositionBranch(nn.Module):
    """Roost-style message passing over the elements of each formula, weighted by fraction."""

    def __init__(self, dim: int, steps: int):
        super().__init__()
        self.embedding = nn.Embedding(N_ELEMENTS, dim)
        self.messages = nn.ModuleList(
            nn.ModuleDict({"gate": nn.Linear(2 * dim, 1), "value": GatedMLP(2 * dim, dim)})
            for _ in range(steps)
        )
        self.pool_gate = nn.Linear(dim, 1)
        self.pool_value = nn.Linear(dim, dim)

    def forward(self, numbers: torch.Tensor, graph: torch.Tensor, n_graphs: int) -> torch.Tensor:
        """(n_graphs, dim) composition vectors from the atoms of each structure."""
        key = graph * N_ELEMENTS + numbers
        unique, inverse = torch.unique(key, return_inverse=True)
        owner = torch.div(unique, N_ELEMENTS, rounding_mode="floor")
        counts = segment_sum(torch.ones_like(numbers, dtype=torch.float32), inverse, len(unique))
        fraction = (counts / segment_sum(counts, owner, n_graphs)[owner]).to(
            self.pool_gate.weight.dtype
        )
        x = self.embedding(unique - owner * N_ELEMENTS)
        # All ordered pairs (i, j) of elements of the same structure, self-pairs included
        # (a pure element has no other partner).
        per_graph = segment_sum(torch.ones_like(owner), owner, n_graphs)
        start = torch.cumsum(per_graph, 0) - per_graph
        size = per_graph[owner]
        i = torch.repeat_interleave(torch.arange(len(unique), device=x.device), size)
        offsets = torch.arange(len(i), device=x.device) - torch.repeat_interleave(
            torch.cumsum(size, 0) - size, size
        )
        j = start[owner[i]] + offsets
        log_w = torch.log(fraction)
        for step in self.messages:
            pair = torch.cat([x[i], x[j]], -1)
            a = segment_softmax(step["gate"](pair).squeeze(-1) + log_w[j], i, len(unique))
            x = x + segment_sum(a.unsqueeze(-1) * step["value"](pair), i, len(unique))
        a = segment_softmax(self.pool_gate(x).squeeze(-1) + log_w, owner, n_graphs)
        return segment_sum(a.unsqueeze(-1) * self.pool_value(x), owner, n_graphs)


class SymmetryStream(nn.Module):
    """Embeddings of space group, crystal system and per-site symmetry."""

    def __init__(self, dim: int, width: int):
        super().__init__()
        self.space_group = nn.Embedding(231, dim)
        self.crystal_system = nn.Embedding(len(CRYSTAL_SYSTEMS) + 1, dim)
        self.site_order = nn.Embedding(len(SITE_ORDERS), dim)
        self.to_atoms = nn.Linear(dim + 1, width)
        self.to_state = nn.Linear(2 * dim, width)
        self.register_buffer("orders", torch.tensor(SITE_ORDERS))
        self.register_buffer("system_ends", torch.tensor(SYSTEM_ENDS))

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(atom features (N, width), state features (B, width))."""
        if batch.space_group is None:
            raise DataError(
                "this SEN model uses the symmetry stream, but the graphs carry no symmetry; "
                "build them with symmetry=true (or set model.symmetry=false)"
            )
        group = batch.space_group
        system = torch.searchsorted(self.system_ends, group) + 1
        system = torch.where(group > 0, system, torch.zeros_like(system))
        order = torch.searchsorted(self.orders, batch.site_symmetry_order)
        multiplicity = torch.log(batch.wyckoff_multiplicity.to(self.to_atoms.weight.dtype))
        atoms = self.to_atoms(torch.cat([self.site_order(order), multiplicity.unsqueeze(-1)], -1))
        state = self.to_state(torch.cat([self.space_group(group), self.crystal_system(system)], -1))
        return atoms, state


class PartCapsules(nn.Module):
    """z as a 16x16 image -> 4 convolutions -> poses, features and presence of 16 capsules."""

    def __init__(self, cfg: SenConfig):
        super().__init__()
        c = cfg.conv_channels
        layers: list[nn.Module] = []
        for n_in, stride in ((1, 1), (c, 2), (c, 1), (c, 2)):
            # Per-sample group norm keeps the signal alive through the stack without
            # coupling the crystals of a batch (as batch norm would).
            layers += [nn.Conv2d(n_in, c, 3, stride=stride, padding=1), nn.GroupNorm(4, c)]
            layers.append(nn.SiLU())
        self.convs = nn.Sequential(*layers)
        self.n_features = cfg.capsule_features
        self.capsules = nn.Linear(c * 16, N_CAPSULES * (POSE_SIZE + cfg.capsule_features + 1))
        self.noise = cfg.presence_noise

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pose (B, 16, 6), feature (B, 16, F), presence logit and probability (B, 16)."""
        image = self.convs(z.view(-1, 1, 16, 16)).flatten(1)
        raw = self.capsules(image).view(-1, N_CAPSULES, POSE_SIZE + self.n_features + 1)
        pose, feature, logit = raw.split([POSE_SIZE, self.n_features, 1], dim=-1)
        logit = logit.squeeze(-1)
        if self.training and self.noise > 0:
            logit = logit + self.noise * (torch.rand_like(logit) - 0.5)
        return {
            "capsule_pose": pose,
            "capsule_feature": feature,
            "capsule_presence": torch.sigmoid(logit),
        }


class Sen(nn.Module):
    """SEN on flat batches of cutoff graphs.

    ``forward(batch)`` returns ``prediction`` (B,), ``atom_attention`` (N,; the Set2Set
    weights of the last step, summing to 1 per crystal), ``crystal_vector`` (B, 256),
    ``capsule_presence`` (B, 16), ``capsule_pose`` (B, 16, 6) and ``capsule_matrix`` (the
    D matrices, B x 16 x 6).
    """

    def __init__(self, cfg: SenConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or SenConfig()
        w = cfg.width
        self.embedding = nn.Embedding(N_ELEMENTS, w)
        self.rbf = GaussianExpansion(0.0, cfg.max_distance, cfg.n_gaussians, cfg.gaussian_width)
        self.edge_in = nn.Sequential(nn.Linear(cfg.n_gaussians, w), nn.SiLU(), nn.Linear(w, w))
        self.symmetry = SymmetryStream(cfg.symmetry_dim, w) if cfg.symmetry else None
        self.blocks = nn.ModuleList(
            MegnetBlock(w, cfg.residual_weight) for _ in range(cfg.n_blocks)
        )
        self.composition = CompositionBranch(cfg.composition_dim, cfg.composition_steps)
        self.atom_pool = Set2Set(w, cfg.set2set_steps)
        self.edge_pool = Set2Set(w, cfg.set2set_steps)
        self.composition_gate = nn.Linear(cfg.composition_dim, 2 * w)
        fused = 4 * w + w + cfg.composition_dim
        self.to_crystal = nn.Sequential(nn.Linear(fused, cfg.crystal_dim), nn.SiLU())
        self.cross_step = nn.GRUCell(cfg.crystal_dim, cfg.crystal_dim)
        self.crystal_norm = nn.LayerNorm(cfg.crystal_dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.parts = PartCapsules(cfg)
        self.pose_convs = nn.Sequential(
            nn.Conv2d(2, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 1, 3, padding=1)
        )
        self.head = nn.Sequential(
            nn.Linear(N_CAPSULES * POSE_SIZE, cfg.head_dim),
            nn.SiLU(),
            nn.Linear(cfg.head_dim, 1),
        )

    def forward(
        self,
        batch: Batch,
        return_local_attention: bool = False,
        readout_mask: torch.Tensor | None = None,
    ) -> dict:
        """Predict one value per crystal, with the capsule outputs.

        Args:
            batch: The structures (cutoff graphs; with symmetry if the model uses it).
            return_local_attention: Accepted for interface parity with SCANN; SEN has no
                local attention, so nothing is added.
            readout_mask: Optional (N,) bool; atoms set to False are left out of the
                Set2Set pooling over atoms (their attention becomes 0).
        """
        del return_local_attention
        cfg = self.cfg
        n_graphs = batch.num_graphs
        graph, centers, neighbors = batch.graph_index, batch.centers, batch.neighbors
        edge_graph = graph[centers]
        h = self.embedding(batch.numbers)
        e = self.edge_in(self.rbf(batch.distance))
        u = h.new_zeros(n_graphs, cfg.width)
        if self.symmetry is not None:
            atom_symmetry, state_symmetry = self.symmetry(batch)
            h, u = h + atom_symmetry, u + state_symmetry
        for block in self.blocks:
            h, e, u = block(h, e, u, centers, neighbors, graph, edge_graph)

        c = self.composition(batch.numbers, graph, n_graphs)
        s_atoms, alpha = self.atom_pool(h, graph, n_graphs, readout_mask)
        s_edges, _ = self.edge_pool(e, edge_graph, n_graphs)
        gate = torch.softmax(2 * self.composition_gate(c), -1) * s_atoms.shape[1]
        z0 = self.to_crystal(torch.cat([gate * s_atoms, s_edges, u, c], -1))
        z = self.crystal_norm(self.cross_step(self._attend(z0), z0))
        parts = self.parts(self.dropout(z))
        pose, presence = parts["capsule_pose"], parts["capsule_presence"]
        image = torch.stack([pose, presence.unsqueeze(-1).expand_as(pose)], 1)
        d_matrix = self.pose_convs(image).squeeze(1)
        y = self.head(d_matrix.flatten(1)).squeeze(-1)
        y = output_activation(y, cfg.output_activation)
        return {
            "prediction": y,
            "atom_attention": alpha,
            "crystal_vector": z,
            "capsule_presence": presence,
            "capsule_pose": pose,
            "capsule_feature": parts["capsule_feature"],
            "capsule_matrix": d_matrix,
        }

    def _attend(self, z: torch.Tensor) -> torch.Tensor:
        """Parameter-free attention across the batch in training; identity at inference."""
        if not (self.training and self.cfg.cross_attention):
            return z
        weights = torch.softmax(z @ z.T / math.sqrt(z.shape[1]), -1)
        return weights @ z
