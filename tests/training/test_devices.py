"""Devices: device-independent checkpoints, --device options, CUDA training (marked)."""

import csv
import logging

import numpy as np
import pytest
import torch
import yaml

import atomlens.training.trainer as trainer_module
from atomlens.cli import main
from atomlens.errors import DataError
from atomlens.inference import load_model
from atomlens.structures import read_structures
from atomlens.training.checkpoint import load_checkpoint
from atomlens.training.trainer import MetricsCsv, train


@pytest.fixture
def run(tiny_config):
    return train(tiny_config(epochs=2, device="cpu"), progress=False)


def test_checkpoint_tensors_land_where_map_location_says(run):
    path = run / "checkpoints" / "last.pt"
    on_meta = load_checkpoint(path, map_location="meta")
    assert all(t.device.type == "meta" for t in on_meta["model"].values())
    on_cpu = load_checkpoint(path, map_location=torch.device("cpu"))
    assert all(t.device.type == "cpu" for t in on_cpu["model"].values())
    assert on_cpu["metrics_row"][0] == 2 and on_cpu["state"]["epoch"] == 2
    assert "cuda_rng" not in on_cpu  # only saved when training on CUDA


def test_predict_on_cpu_returns_numpy(run, molecule_file):
    predictor = load_model(run, device="cpu")
    assert predictor.device == torch.device("cpu")
    assert next(predictor.model.parameters()).device.type == "cpu"
    results = predictor.predict(list(read_structures(molecule_file)))
    assert isinstance(results[0].atom_attention, np.ndarray) and len(results) == 12
    with pytest.raises(DataError, match="unknown device"):
        load_model(run, device="gpu")


def test_cuda_device_without_cuda_is_one_clear_line(run, tiny_config, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    commands = [
        ["evaluate", str(run)],
        ["predict", str(run), "x.xyz"],
        ["explain", str(run), "--split", "test"],
        ["validate-attention", str(run)],
        ["train", str(run / "config.yaml")],
        ["benchmark", "--task", "homo", "--data", "x.xyz", "--model", "scann", "--out", "b"],
    ]
    for args in commands:
        assert main([*args, "--device", "cuda"]) == 1
        err = capsys.readouterr().err.strip()
        assert "CUDA is not available" in err and "\n" not in err
    with pytest.raises(DataError, match="CUDA is not available"):
        train(tiny_config(device="cuda"), progress=False)
    with pytest.raises(DataError, match=r"training\.device"):
        tiny_config(device="gpu0")


def test_train_restores_process_settings(tiny_config, monkeypatch):
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    wanted = 2 if threads != 2 else 3
    torch.set_num_threads(wanted)
    try:
        train(tiny_config(epochs=1, threads=1), progress=False)
        assert torch.get_num_threads() == wanted
        assert torch.are_deterministic_algorithms_enabled() == deterministic

        def broken(self, trainer, result):
            raise DataError("disk full")

        monkeypatch.setattr(MetricsCsv, "on_epoch_end", broken)
        with pytest.raises(DataError, match="disk full"):
            train(tiny_config(epochs=2, threads=1), progress=False)
        assert torch.get_num_threads() == wanted
        assert torch.are_deterministic_algorithms_enabled() == deterministic
    finally:
        torch.set_num_threads(threads)


def epochs_in(run_dir):
    return [int(r["epoch"]) for r in csv.DictReader((run_dir / "metrics.csv").open())]


def test_kill_between_checkpoint_and_metrics_row(tiny_config, tmp_path, monkeypatch):
    reference = train(tiny_config(), progress=False)
    config = tiny_config()
    config.run_dir = str(tmp_path / "killed")
    real = MetricsCsv.on_epoch_end

    def dies_at_epoch_2(self, trainer, result):
        if result.epoch == 2:
            raise KeyboardInterrupt  # the checkpoint of epoch 2 is written, its row is not
        real(self, trainer, result)

    monkeypatch.setattr(MetricsCsv, "on_epoch_end", dies_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    assert epochs_in(tmp_path / "killed") == [1]
    monkeypatch.setattr(MetricsCsv, "on_epoch_end", real)
    resumed = train(config, progress=False)
    assert epochs_in(resumed) == [1, 2, 3, 4]
    with (reference / "metrics.csv").open() as a, (resumed / "metrics.csv").open() as b:
        # identical losses and MAEs (timing columns differ)
        assert [r[:5] for r in csv.reader(a)] == [r[:5] for r in csv.reader(b)]


def test_resume_drops_rows_after_the_checkpoint(tiny_config, monkeypatch):
    run = train(tiny_config(epochs=2), progress=False)
    with (run / "metrics.csv").open("a", newline="") as handle:
        csv.writer(handle).writerows([[2, 9, 9, 9, 9, 1, 1], [3, 9, 9, 9, 9, 1, 1]])
    assert epochs_in(run) == [1, 2, 2, 3]
    train(tiny_config(epochs=3), progress=False)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(float(r["train_loss"]) != 9 for r in rows)


def test_checkpoint_is_written_before_the_metrics_row(tiny_config, monkeypatch):
    order = []
    real_save = trainer_module.save_checkpoint
    real_row = MetricsCsv.on_epoch_end

    def save(path, payload):
        order.append(path.name)
        real_save(path, payload)

    def row(self, trainer, result):
        order.append("row")
        real_row(self, trainer, result)

    monkeypatch.setattr(trainer_module, "save_checkpoint", save)
    monkeypatch.setattr(MetricsCsv, "on_epoch_end", row)
    train(tiny_config(epochs=1), progress=False)
    assert order == ["best.pt", "last.pt", "row"]


@pytest.mark.device
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_on_cuda_predict_on_cpu(tiny_config, molecule_file):
    run = train(tiny_config(epochs=2, device="cuda", precision="bf16"), progress=False)
    checkpoint = load_checkpoint(run / "checkpoints" / "last.pt")
    assert "cuda_rng" in checkpoint
    assert all(t.device.type == "cpu" for t in checkpoint["model"].values())
    structures = list(read_structures(molecule_file))
    on_cpu = load_model(run, device="cpu").predict(structures)
    on_cuda = load_model(run, device="cuda").predict(structures)
    np.testing.assert_allclose(
        [r.value for r in on_cpu], [r.value for r in on_cuda], rtol=1e-4, atol=1e-5
    )
    for a, b in zip(on_cpu, on_cuda, strict=True):
        assert isinstance(b.atom_attention, np.ndarray)
        np.testing.assert_allclose(a.atom_attention, b.atom_attention, atol=1e-5)
    assert main(["evaluate", str(run), "--device", "cuda"]) == 0


def test_verbosity_flags(tiny_config, tmp_path, capsys):
    config = tiny_config(epochs=1)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert main(["train", str(path)]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "done: best val MAE" in out and "parameters" not in out
    assert main(["-v", "train", str(path), "--overwrite", "--set", "training.epochs=2"]) == 0
    assert "parameters" in capsys.readouterr().out
    assert main(["-q", "train", str(path), "--set", "training.epochs=3"]) == 0
    assert capsys.readouterr().out == ""
    assert logging.getLogger("atomlens").handlers == []  # the CLI removed its handler
