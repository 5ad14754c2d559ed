"""Mixed precision on the CPU: bf16 autocast stays close to fp32 and trains."""

import csv
import math

import numpy as np
import pytest
import torch

from atomlens.batching import collate
from atomlens.config import validate_config
from atomlens.datasets import GraphDataset, build_graph_cache, load_source, make_params
from atomlens.device import autocast
from atomlens.errors import DataError
from atomlens.models import build_model, graph_spec
from atomlens.training.trainer import train
from tests.training.conftest import TINY_MODEL

# bf16 keeps 8 bits of mantissa (relative step 2^-8 = 0.4 %); a few layers compound that.
PREDICTION_TOLERANCE = 5e-2  # relative to the largest |fp32 prediction|
# Attention is normalised in fp32 and returned in bf16: rounding each weight moves the sum
# by at most the bf16 unit roundoff 2^-9 (~0.002). Twice that still fails a softmax done in
# bf16 throughout (sums off by up to 0.006 on these molecules).
ATTENTION_SUM_TOLERANCE = 2**-8

TINY_SEN = {"name": "sen", "width": 8, "composition_dim": 8, "conv_channels": 4, "head_dim": 8}


def dataset_and_model(tmp_path, source, target, model):
    config = validate_config({"data": {"source": str(source), "target": target}, "model": model})
    data = load_source(config.data.source, targets=[target])
    kind, params = graph_spec(config.model, config.data.graph)
    path = build_graph_cache(
        data, kind, make_params(kind, **params), cache_dir=tmp_path / "cache", progress=False
    )
    torch.manual_seed(0)
    return GraphDataset(path), build_model(config.model).eval()


@pytest.mark.parametrize(
    ("source", "target", "model"),
    [
        ("tests/data/qm9_sample.extxyz", "homo", TINY_MODEL | {"dropout": 0.0}),
        ("tests/data/mp_crystals_sample.extxyz", "formation_energy_per_atom", TINY_SEN),
    ],
    ids=["scann", "sen"],
)
def test_bf16_forward_is_close_to_fp32(tmp_path, source, target, model):
    dataset, network = dataset_and_model(tmp_path, source, target, model)
    batch = collate(dataset, np.arange(len(dataset)))
    cpu = torch.device("cpu")
    with torch.no_grad():
        reference = network(batch)
        with autocast(cpu, "bf16"):
            low = network(batch)
    assert low["prediction"].dtype == torch.bfloat16  # autocast really ran in bf16
    expected = reference["prediction"].numpy()
    got = low["prediction"].float().numpy()
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= PREDICTION_TOLERANCE * scale
    sums = torch.zeros(batch.num_graphs).index_add_(
        0, batch.graph_index, low["atom_attention"].float()
    )
    np.testing.assert_allclose(sums.numpy(), 1.0, atol=ATTENTION_SUM_TOLERANCE)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_one_epoch_in_low_precision_on_cpu(tiny_config, precision):
    run = train(tiny_config(epochs=1, precision=precision, device="cpu"), progress=False)
    (row,) = list(csv.DictReader((run / "metrics.csv").open()))
    assert math.isfinite(float(row["train_loss"])) and math.isfinite(float(row["val_mae"]))


def test_unknown_precision_is_a_config_error(tiny_config):
    with pytest.raises(DataError, match=r"training\.precision"):
        tiny_config(precision="fp8")
