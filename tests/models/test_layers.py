"""The fast SCANN paths against a plain re-implementation of the original (def5109) code.

``OldScann`` below is the original module structure and forward pass: the SCANN+ edge
update as one ``Linear(3d, d)`` on ``cat[h[centers], edge, h[neighbors]]``, advanced
indexing for gathers and ``scatter_reduce`` for the softmax maximum. The model in
``atomlens.models.scann`` must load its state dict strictly and compute the same values
and gradients.
"""

from __future__ import annotations

import math
import types

import pytest
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from atomlens.models.layers import (
    GaussianExpansion,
    edge_attention,
    segment_max,
    segment_softmax,
)
from atomlens.models.scann import N_ELEMENTS, Scann, ScannConfig

SMALL = {
    "n_layers": 2,
    "local_dim": 32,
    "n_heads": 4,
    "ffn_dim": 48,
    "global_dim": 24,
    "readout_dim": 16,
    "embedding_dim": 8,
}


def old_segment_sum(values: torch.Tensor, segment: torch.Tensor, n: int) -> torch.Tensor:
    return values.new_zeros((n, *values.shape[1:])).index_add_(0, segment, values)


def old_segment_softmax(logits: torch.Tensor, segment: torch.Tensor, n: int) -> torch.Tensor:
    index = segment.view(-1, *([1] * (logits.dim() - 1))).expand_as(logits)
    maxima = logits.new_full((n, *logits.shape[1:]), float("-inf")).scatter_reduce(
        0, index, logits, reduce="amax", include_self=True
    )
    shifted = torch.exp(logits - maxima.detach()[segment])
    return shifted / old_segment_sum(shifted, segment, n)[segment]


class OldLocalAttention(nn.Module):
    def __init__(self, cfg: ScannConfig):
        super().__init__()
        d, self.heads = cfg.local_dim, cfg.n_heads
        self.plus = cfg.variant == "scann_plus"
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.edge_update = nn.Linear(3 * d, d) if self.plus else nn.Linear(cfg.n_gaussians, d)
        self.edge_norm = nn.LayerNorm(d) if self.plus else None
        self.attn_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.ffn_dim), nn.SiLU(), nn.Linear(cfg.ffn_dim, d))
        self.ffn_dropout = nn.Dropout(cfg.dropout)
        self.ffn_norm = nn.LayerNorm(d)

    def forward(self, h, edge, centers, neighbors, ratio, rbf_distance):
        if self.plus:
            update = self.edge_update(torch.cat([h[centers], edge, h[neighbors]], dim=-1))
            edge = self.edge_norm(edge + F.silu(update))
            gate = edge
        else:
            gate = F.silu(self.edge_update(rbf_distance)) * ratio.unsqueeze(-1)
        n_atoms, d = h.shape
        head_dim = d // self.heads
        q = self.query(h).view(n_atoms, self.heads, head_dim)
        k = self.key(h[neighbors] * gate).view(-1, self.heads, head_dim)
        logits = (q[centers] * k).sum(-1) / math.sqrt(head_dim)
        weights = old_segment_softmax(logits, centers, n_atoms)
        attended = old_segment_sum(weights.unsqueeze(-1) * k, centers, n_atoms).view(n_atoms, d)
        u = self.attn_norm(attended + q.view(n_atoms, d))
        h = self.ffn_norm(u + self.ffn_dropout(self.ffn(u)))
        return h, edge, weights


class OldScann(nn.Module):
    def __init__(self, cfg: ScannConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(N_ELEMENTS, cfg.embedding_dim)
        self.atom_in = nn.Sequential(
            nn.Linear(cfg.embedding_dim, cfg.local_dim), nn.SiLU(), nn.Dropout(cfg.dropout)
        )
        self.rbf_distance = GaussianExpansion(0.0, cfg.max_distance, cfg.n_gaussians)
        self.rbf_angle = GaussianExpansion(0.0, 2 * math.pi, cfg.n_gaussians)
        if cfg.variant == "scann_plus":
            self.edge_distance = nn.Linear(cfg.n_gaussians, cfg.local_dim)
            self.edge_angle = nn.Linear(cfg.n_gaussians, cfg.local_dim)
        self.layers = nn.ModuleList(OldLocalAttention(cfg) for _ in range(cfg.n_layers))
        self.global_in = nn.Linear(cfg.local_dim, cfg.global_dim)
        self.global_query = nn.Linear(cfg.global_dim, cfg.global_dim)
        self.global_key = nn.Linear(cfg.global_dim, cfg.global_dim)
        self.readout = nn.Linear(cfg.global_dim, cfg.readout_dim)
        self.out = nn.Linear(cfg.readout_dim, 1)

    def forward(self, batch, return_local_attention=False):
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
        n_graphs, graph = batch.num_graphs, batch.graph_index
        t = F.silu(self.global_in(h))
        q, k = self.global_query(t), self.global_key(t)
        q_total = old_segment_sum(q, graph, n_graphs)
        scores = (k * (q_total[graph] - q)).sum(-1)
        if cfg.normalize_logits:
            norms = old_segment_sum(scores**2, graph, n_graphs).clamp_min(1e-12).sqrt()
            scores = scores / norms[graph]
        alpha = old_segment_softmax(scores, graph, n_graphs)
        z = old_segment_sum(alpha.unsqueeze(-1) * k, graph, n_graphs)
        y = self.out(F.silu(self.readout(z))).squeeze(-1)
        return {"prediction": y, "atom_attention": alpha, "crystal_vector": z, "local": local}


def random_batch(seed: int, dtype: torch.dtype, sort_centers: bool = True) -> types.SimpleNamespace:
    """Random graphs with 1 to 9 atoms, edges within each graph, one atom without edges."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 10, (7,), generator=g).tolist()
    centers, neighbors, offset = [], [], 0
    for size in sizes:
        for atom in range(size):
            if atom == 0 and size > 1 and offset == 0:
                continue  # an atom with no edges
            degree = int(torch.randint(0, 5, (1,), generator=g))
            for _ in range(degree if size > 1 else 0):
                other = int(torch.randint(0, size, (1,), generator=g))
                centers.append(offset + atom)
                neighbors.append(offset + other)
        offset += size
    centers, neighbors = torch.tensor(centers), torch.tensor(neighbors)
    if not sort_centers:
        order = torch.randperm(len(centers), generator=g)
        centers, neighbors = centers[order], neighbors[order]
    n_edges = len(centers)
    return types.SimpleNamespace(
        numbers=torch.randint(1, 30, (offset,), generator=g),
        graph_index=torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes)),
        num_graphs=len(sizes),
        centers=centers,
        neighbors=neighbors,
        distance=(torch.rand(n_edges, generator=g) * 4).to(dtype),
        solid_angle=(torch.rand(n_edges, generator=g) * 2).to(dtype),
        solid_angle_ratio=torch.rand(n_edges, generator=g).to(dtype),
    )


def pair(variant: str, dtype: torch.dtype) -> tuple[Scann, OldScann]:
    """A new model carrying the weights of an old-structure model (strict load)."""
    torch.manual_seed(0)
    cfg = ScannConfig(variant=variant, **SMALL)
    old = OldScann(cfg).to(dtype)
    new = Scann(cfg).to(dtype)
    new.load_state_dict(old.state_dict(), strict=True)
    return new, old


@pytest.mark.parametrize("variant", ["scann", "scann_plus"])
def test_state_dict_keys_and_shapes_are_the_old_ones(variant):
    new, old = pair(variant, torch.float32)
    new_shapes = {k: tuple(v.shape) for k, v in new.state_dict().items()}
    assert new_shapes == {k: tuple(v.shape) for k, v in old.state_dict().items()}
    old.load_state_dict(new.state_dict(), strict=True)


@pytest.mark.parametrize("variant", ["scann", "scann_plus"])
@pytest.mark.parametrize("sort_centers", [True, False])
def test_values_and_gradients_equal_the_old_code(variant, sort_centers):
    new, old = pair(variant, torch.float64)
    batch = random_batch(1, torch.float64, sort_centers)
    assert batch.centers.numel() > 0
    outputs = {}
    for name, model in (("new", new), ("old", old)):
        model.eval()
        out = model(batch, return_local_attention=True)
        local = out["local_attention"] if name == "new" else out["local"]
        weights = torch.linspace(-1, 1, out["prediction"].numel(), dtype=torch.float64)
        loss = (out["prediction"] * weights).sum() + (out["atom_attention"] ** 2).sum()
        loss = loss + sum((w**2).sum() for w in local) + out["crystal_vector"].pow(2).sum()
        loss.backward()
        grads = {k: p.grad for k, p in model.named_parameters()}
        outputs[name] = (out, local, grads)
    (new_out, new_local, new_grads), (old_out, old_local, old_grads) = outputs.values()
    for key in ("prediction", "atom_attention", "crystal_vector"):
        torch.testing.assert_close(new_out[key], old_out[key], rtol=1e-10, atol=1e-12)
    for a, b in zip(new_local, old_local, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert new_grads.keys() == old_grads.keys()
    for key, grad in new_grads.items():
        assert grad is not None and old_grads[key] is not None, key
        torch.testing.assert_close(grad, old_grads[key], rtol=1e-8, atol=1e-10, msg=key)


def test_float32_equals_the_old_code_within_rounding():
    new, old = pair("scann_plus", torch.float32)
    batch = random_batch(2, torch.float32)
    with torch.no_grad():
        a = new.eval()(batch)["prediction"]
        b = old.eval()(batch)["prediction"]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_training_mode_draws_the_same_dropout_masks():
    new, old = pair("scann_plus", torch.float64)
    batch = random_batch(3, torch.float64)
    torch.manual_seed(7)
    a = new.train()(batch)["prediction"]
    torch.manual_seed(7)
    b = old.train()(batch)["prediction"]
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sort_ids", [True, False])
def test_segment_softmax_and_max_equal_the_old_formulas(sort_ids):
    g = torch.Generator().manual_seed(0)
    segment = torch.tensor([0, 0, 0, 2, 2, 3, 5, 5, 5, 5])  # segments 1 and 4 are empty
    if not sort_ids:
        segment = segment[torch.randperm(len(segment), generator=g)]
    logits = torch.randn(len(segment), 3, generator=g, dtype=torch.float64) * 5
    logits.requires_grad_(True)
    expected_max = torch.full((6, 3), float("-inf"), dtype=torch.float64)
    for k in range(6):
        if (segment == k).any():
            expected_max[k] = logits.detach()[segment == k].max(0).values
    torch.testing.assert_close(segment_max(logits, segment, 6), expected_max)
    new = segment_softmax(logits, segment, 6)
    old = old_segment_softmax(logits, segment, 6)
    torch.testing.assert_close(new, old)
    upstream = torch.randn(new.shape, generator=g, dtype=torch.float64)
    (grad_new,) = torch.autograd.grad(new, logits, upstream)
    (grad_old,) = torch.autograd.grad(old, logits, upstream)
    torch.testing.assert_close(grad_new, grad_old)
    assert torch.autograd.gradcheck(lambda x: segment_softmax(x, segment, 6), (logits,))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_segment_softmax_is_safe_in_low_precision(dtype):
    segment = torch.tensor([0, 0, 0, 1, 1, 2])
    logits = torch.tensor([[1000.0], [998.0], [-1000.0], [1000.0], [1000.0], [-1000.0]])
    weights = segment_softmax(logits.to(dtype), segment, 3)
    assert weights.dtype == dtype
    assert torch.isfinite(weights).all()
    sums = torch.zeros(3, 1).index_add_(0, segment, weights.float())
    torch.testing.assert_close(sums, torch.ones(3, 1), rtol=0, atol=1e-2)
    expected = old_segment_softmax(logits.to(dtype).float(), segment, 3)  # exact input values
    torch.testing.assert_close(weights.float(), expected, rtol=0, atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_segment_softmax_normalises_long_segments_in_float32(dtype):
    # 1000 equal logits: a half-precision running total would stall at 256 (bf16) or
    # 2048 (fp16) and give weights far from 1/1000.
    segment = torch.zeros(3000, dtype=torch.long)
    segment[1000:] = 1
    logits = torch.full((3000,), 1e3, dtype=dtype)
    weights = segment_softmax(logits, segment, 2)
    assert not torch.isnan(weights).any()
    torch.testing.assert_close(weights[:1000].float(), torch.full((1000,), 1e-3), rtol=1e-2, atol=0)
    sums = torch.zeros(2).index_add_(0, segment, weights.float())
    torch.testing.assert_close(sums, torch.ones(2), rtol=0, atol=1e-2)


def test_segment_softmax_under_autocast_bf16():
    segment = torch.tensor([0, 0, 1, 1, 1])
    x = torch.randn(5, 4) * 300
    layer = nn.Linear(4, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(x)
        assert logits.dtype == torch.bfloat16
        weights = segment_softmax(logits, segment, 2)
    assert torch.isfinite(weights).all()
    sums = torch.zeros(2, 2).index_add_(0, segment, weights.float())
    torch.testing.assert_close(sums, torch.ones(2, 2), rtol=0, atol=1e-2)


def test_scann_plus_forward_and_backward_under_autocast_bf16():
    new, _ = pair("scann_plus", torch.float32)
    batch = random_batch(4, torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = new.train()(batch)
    loss = out["prediction"].float().pow(2).sum()
    loss.backward()
    assert torch.isfinite(out["prediction"].float()).all()
    assert all(torch.isfinite(p.grad).all() for p in new.parameters() if p.grad is not None)


def reference_edge_attention(q, k, centers, n_atoms):
    logits = (q[centers] * k).sum(-1) / math.sqrt(k.shape[-1])
    weights = old_segment_softmax(logits, centers, n_atoms)
    return old_segment_sum(weights.unsqueeze(-1) * k, centers, n_atoms), weights


@pytest.mark.parametrize("use_weights", [True, False])
def test_edge_attention_equals_the_plain_formula_in_value_and_gradient(use_weights):
    g = torch.Generator().manual_seed(5)
    centers = torch.tensor([0, 0, 1, 1, 1, 3, 4, 4])  # atom 2 has no edges
    q = torch.randn(5, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(8, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    fast = edge_attention(q, k, centers, 5)
    slow = reference_edge_attention(q, k, centers, 5)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b)
    up_att = torch.randn(5, 2, 3, generator=g, dtype=torch.float64)
    up_w = torch.randn(8, 2, generator=g, dtype=torch.float64)

    def loss(out):
        return (out[0] * up_att).sum() + ((out[1] * up_w).sum() if use_weights else 0)

    grads_fast = torch.autograd.grad(loss(fast), (q, k))
    grads_slow = torch.autograd.grad(loss(slow), (q, k))
    for a, b in zip(grads_fast, grads_slow, strict=True):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(lambda q, k: edge_attention(q, k, centers, 5), (q, k))
    weights_only = torch.autograd.grad(edge_attention(q, k, centers, 5)[1].pow(2).sum(), k)[0]
    expected = torch.autograd.grad(reference_edge_attention(q, k, centers, 5)[1].pow(2).sum(), k)
    torch.testing.assert_close(weights_only, expected[0])
