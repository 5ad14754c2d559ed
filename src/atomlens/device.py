"""Where tensors live: device strings, batch transfer and background batch prefetching."""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import torch

from atomlens.errors import DataError

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"
DEVICE_HELP = "auto (CUDA if available, else CPU), cpu, cuda, cuda:N or mps"

T = TypeVar("T")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The torch device a device string names, checked to be usable here.

    Args:
        spec: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises:
        DataError: If the string is malformed or the device is not available.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    if not re.match(DEVICE_PATTERN, text):
        raise DataError(f"unknown device {spec!r}; use {DEVICE_HELP}")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise DataError("device 'mps' requested but Apple MPS is not available here")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise DataError(
            f"device {spec!r} requested but CUDA is not available here (torch "
            f"{torch.__version__}); use --device cpu or install a CUDA build of torch"
        )
    device = torch.device(text)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise DataError(f"device {spec!r} requested but only {count} CUDA device(s) exist")
    return device


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a model without parameters)."""
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def to_device(batch: T, device: torch.device, non_blocking: bool = False) -> T:
    """``batch`` on ``device``; batches are built on the CPU, so CPU is a no-op."""
    if device.type == "cpu":
        return batch
    return batch.to(device, non_blocking=non_blocking)  # type: ignore[attr-defined]


def to_cpu(value: Any) -> Any:
    """Tensors (also inside dicts, lists and tuples) moved to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {key: to_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_cpu(item) for item in value)
    return value


class Prefetcher(Iterator[T]):
    """Produce the items of an iterable in a background thread, a few ahead of the consumer.

    Exceptions raised while producing are re-raised in the consuming thread. Call
    :meth:`close` (or use it as a context manager) when stopping early: the thread then
    stops after the item it is working on.

    Args:
        items: What to produce (e.g. collated batches).
        depth: How many finished items may wait in the queue.
        pin_memory: Pin each item (``item.pin_memory()``) for fast asynchronous copies.
    """

    _DONE = object()

    def __init__(self, items: Iterable[T], depth: int = 2, pin_memory: bool = False):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(
            target=self._produce, args=(iter(items), pin_memory), daemon=True
        )
        self._thread.start()

    def _produce(self, items: Iterator[T], pin_memory: bool) -> None:
        try:
            for item in items:
                if pin_memory:
                    item = item.pin_memory()  # type: ignore[attr-defined]
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer
            self._put(_Failure(exc))
            return
        self._put(self._DONE)

    def _put(self, item: Any) -> bool:
        """Queue ``item``; False when the consumer closed the prefetcher meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if item is self._DONE:
            self._finished = True
            self._thread.join()
            raise StopIteration
        if isinstance(item, _Failure):
            self._finished = True
            self._thread.join()
            raise item.exc
        return item

    def close(self) -> None:
        """Stop the producing thread and wait for it."""
        self._finished = True
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()


class _Failure:
    """An exception raised in the producing thread, carried through the queue."""

    def __init__(self, exc: BaseException):
        self.exc = exc


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """``torch.autocast`` for ``precision`` on ``device`` (a no-op context for fp32).

    Raises:
        DataError: If the precision is unknown or autocast is not available on the device.
    """
    if precision not in PRECISIONS:
        raise DataError(f"unknown precision {precision!r}; use fp32, bf16 or fp16")
    if precision == "fp32":
        return nullcontext()
    if not torch.amp.is_autocast_available(device.type):
        raise DataError(f"precision {precision} needs autocast, which {device.type} lacks")
    return torch.autocast(device.type, dtype=PRECISIONS[precision])
