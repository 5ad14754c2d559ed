"""A toy model with a known answer for the attribution and explanation-benchmark tests."""

import copy

import torch
from torch import nn

from atomlens.batching import Batch
from atomlens.inference import Predictor
from atomlens.training.scaling import Scaling

OXYGEN = 8


class OxygenOnly(nn.Module):
    """Toy model: prediction = w . (sum of the embeddings of the O atoms); uniform attention."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(100, 4)
        self.weight = nn.Parameter(torch.tensor([0.5, -1.0, 2.0, 0.25]))

    def forward(
        self, batch: Batch, return_local_attention: bool = False, readout_mask=None
    ) -> dict:
        e = self.embedding(batch.numbers)
        picked = (batch.numbers == OXYGEN).unsqueeze(-1) * e
        graph = batch.graph_index
        per_graph = torch.zeros(batch.num_graphs, e.shape[1]).index_add(0, graph, picked)
        counts = torch.bincount(graph, minlength=batch.num_graphs).to(e.dtype)
        return {"prediction": per_graph @ self.weight, "atom_attention": 1.0 / counts[graph]}


def oxygen_predictor(predictor: Predictor, std: float) -> Predictor:
    """A copy of ``predictor`` running OxygenOnly, with target scaling (0, std)."""
    toy = copy.copy(predictor)
    toy.model = OxygenOnly().eval()
    toy.scaling = Scaling(0.0, std)
    return toy
