import threading

import pytest
import torch

from atomlens.device import Prefetcher, autocast, resolve_device, to_cpu
from atomlens.errors import DataError


def test_device_strings():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:", "cuda:x", "cpu:0", "", "tpu"):
        with pytest.raises(DataError, match="unknown device"):
            resolve_device(bad)


def test_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(DataError, match="CUDA is not available") as caught:
            resolve_device(spec)
        assert "\n" not in str(caught.value)


def test_missing_cuda_index_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(DataError, match="only 1 CUDA device"):
        resolve_device("cuda:3")


def test_autocast_rejects_unknown_precision():
    with pytest.raises(DataError, match="unknown precision"):
        autocast(torch.device("cpu"), "fp8")
    with autocast(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")


def test_to_cpu_walks_containers():
    value = {"a": torch.ones(2), "b": [torch.zeros(1), 3], "c": (torch.ones(1),)}
    moved = to_cpu(value)
    assert moved["b"][1] == 3 and isinstance(moved["c"], tuple)
    assert all(t.device.type == "cpu" for t in (moved["a"], moved["b"][0], moved["c"][0]))


def test_prefetcher_keeps_order_and_reraises():
    assert list(Prefetcher(iter(range(10)), depth=2)) == list(range(10))

    def failing():
        yield 1
        raise ValueError("collate failed")

    items = Prefetcher(failing())
    assert next(items) == 1
    with pytest.raises(ValueError, match="collate failed"):
        next(items)
    with pytest.raises(StopIteration):
        next(items)


def test_prefetcher_stops_when_the_consumer_stops_early():
    produced = []

    def endless():
        k = 0
        while True:
            produced.append(k)
            yield k
            k += 1

    with Prefetcher(endless(), depth=2) as items:
        assert [next(items) for _ in range(3)] == [0, 1, 2]
    assert not any(t.name == items._thread.name and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 3 + 2 + 1  # consumed + queue depth + the one in hand


def test_md_calculator_takes_the_device_option(monkeypatch):
    from atomlens.diffusion.amorphous import make_calculator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DataError, match="CUDA is not available"):
        make_calculator("chgnet", device="cuda")
    with pytest.raises(DataError, match="unknown device"):
        make_calculator("emt", device="gpu")
    assert make_calculator("emt", device="cpu") is not None
