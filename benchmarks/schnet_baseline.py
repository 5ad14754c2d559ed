"""A resumable PyG SchNet baseline on atomlens' cutoff graphs, trained for a time budget.

SchNet (``torch_geometric.nn.models.SchNet``, ``pip install 'atomlens[bench]'``) gets atomlens'
cutoff graph through its ``interaction_graph`` argument. :func:`train_schnet` trains in an
output folder: after every finished epoch ``checkpoint.pt`` (model, optimiser, progress,
best-validation weights, RNG state) is written atomically, and a rerun resumes from it, so a
killed run loses at most the epoch in progress. A lock refuses a second process on the same
folder.

The budget is in *training seconds*, accumulated over resumed calls: every second of the
epoch loop (training steps, validation, checkpoints) counts, as in atomlens' trainer
(``training.max_minutes``). As there, the budget is checked after every batch; an epoch cut
by it is dropped (not validated; the checkpoint keeps the last finished epoch) and the
learning rate follows one cosine from ``lr`` to ``min_lr`` over the budget. An epoch-count
budget (deterministic; used by the tests) follows the cosine over the epochs instead.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atomlens.batching import Batch, iterate_batches
from atomlens.datasets import GraphDataset, Source, Split, build_graph_cache, make_params
from atomlens.errors import DataError
from atomlens.files import write_json_atomic
from atomlens.training.checkpoint import load_checkpoint, save_checkpoint
from atomlens.training.metrics import regression_metrics
from atomlens.training.trainer import cosine, run_dir_lock

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"


@dataclass(frozen=True)
class SchNetSettings:
    """Model and optimiser settings of the baseline (the defaults are the benchmark's).

    Attributes:
        hidden_channels: Width of the atom features.
        num_filters: Width of the continuous filters.
        num_interactions: Interaction blocks.
        num_gaussians: Gaussians of the distance expansion.
        cutoff: Cutoff radius of the graph and the filters (Angstrom).
        readout: ``mean`` (intensive targets) or ``add``.
        batch_size: Training batch size.
        eval_batch_size: Batch size of validation and test predictions.
        lr: Initial learning rate (Adam).
        min_lr: Final learning rate of the cosine schedule.
        loss: ``rmse`` or ``mae`` on standardised targets.
        grad_clip: Gradient-norm clip.
        seed: Seed of the initial weights and of the epoch shuffles.
    """

    hidden_channels: int = 128
    num_filters: int = 128
    num_interactions: int = 6
    num_gaussians: int = 50
    cutoff: float = 5.0
    readout: str = "mean"
    batch_size: int = 64
    eval_batch_size: int = 256
    lr: float = 5e-4
    min_lr: float = 5e-5
    loss: str = "rmse"
    grad_clip: float = 10.0
    seed: int = 0


@dataclass(frozen=True)
class Budget:
    """How long to train: training seconds (benchmarks) or epochs (deterministic tests).

    Attributes:
        seconds: Training seconds, accumulated over resumed calls.
        epochs: Number of epochs.
    """

    seconds: float | None = None
    epochs: int | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.epochs is None):
            raise ValueError("give exactly one of seconds and epochs")
        if (self.seconds is not None and self.seconds <= 0) or (
            self.epochs is not None and self.epochs < 1
        ):
            raise ValueError(f"the budget must be positive: {self}")

    def phase(self, elapsed: float, epoch: float) -> float:
        """Share of the budget used (0 to 1), from seconds or (fractional) epochs."""
        if self.seconds is not None:
            return min(elapsed / self.seconds, 1.0)
        return min(epoch / self.epochs, 1.0)

    def spent(self, elapsed: float, epochs: int) -> bool:
        """True when no further epoch may start."""
        if self.seconds is not None:
            return elapsed >= self.seconds
        return epochs >= self.epochs

    def describe(self) -> str:
        """The budget in words (a stop reason)."""
        if self.seconds is not None:
            return f"time budget of {self.seconds:.1f} training seconds reached"
        return f"{self.epochs} epochs done"


@dataclass
class SchNetState:
    """Progress saved in every checkpoint."""

    epoch: int = 0
    elapsed_seconds: float = 0.0
    best_val_mae: float = math.inf
    best_epoch: int = 0
    stopped: str = ""
    discarded_batches: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


class PrecomputedGraph:
    """SchNet ``interaction_graph`` that returns the current batch's cutoff edges."""

    def __init__(self) -> None:
        self.edges: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, pos: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The edges set by the caller (positions and batch vector are not used)."""
        assert self.edges is not None, "set the batch's edges first"
        return self.edges


def cutoff_data(
    source: Source,
    split: Split,
    cutoff: float = 5.0,
    *,
    workers: int = 1,
    cache_dir: str | Path | None = None,
) -> tuple[GraphDataset, Split]:
    """Cutoff graphs of the split's records (cached) and the split as rows of that data set.

    Args:
        source: The source the split's record indices refer to.
        split: Record indices of train, val and test.
        cutoff: Graph cutoff radius (Angstrom).
        workers: Processes building missing graphs.
        cache_dir: atomlens graph cache folder (default: atomlens' own).

    Returns:
        The data set (train, val and test records one after the other) and the split's rows.
    """
    parts = [split.train, split.val, split.test]
    records = np.concatenate(parts)
    entry = build_graph_cache(
        source,
        "cutoff",
        make_params("cutoff", cutoff=cutoff, allow_isolated=True),
        records=records,
        cache_dir=cache_dir,
        workers=workers,
    )
    dataset = GraphDataset(entry, records=records)
    ends = np.cumsum([0, *(p.size for p in parts)])
    rows = Split(
        *(np.arange(ends[k], ends[k + 1], dtype=np.int64) for k in range(3)),
        seed=split.seed,
        n_total=int(ends[-1]),
    )
    return dataset, rows


def data_fingerprint(dataset: GraphDataset, rows: Split) -> str:
    """A short hash of the source records and labels of each part (a resume must match it)."""
    digest = hashlib.sha256(str(dataset.manifest.get("key", "")).encode())
    for part in (rows.train, rows.val, rows.test):
        digest.update(np.ascontiguousarray(dataset.records[part], dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(dataset.targets[part, 0], dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


def build_schnet(settings: SchNetSettings) -> tuple[torch.nn.Module, PrecomputedGraph]:
    """The PyG SchNet of ``settings`` and the graph hook its forward pass reads edges from."""
    from torch_geometric.nn.models import SchNet

    graph = PrecomputedGraph()
    model = SchNet(
        hidden_channels=settings.hidden_channels,
        num_filters=settings.num_filters,
        num_interactions=settings.num_interactions,
        num_gaussians=settings.num_gaussians,
        cutoff=settings.cutoff,
        interaction_graph=graph,
        readout=settings.readout,
    )
    return model, graph


def cosine_lr(settings: SchNetSettings, phase: float) -> float:
    """Learning rate at ``phase`` (0 to 1) of the budget."""
    return cosine(settings.lr, settings.min_lr, phase)


def train_schnet(
    dataset: GraphDataset,
    rows: Split,
    folder: Path | str,
    budget: Budget,
    settings: SchNetSettings | None = None,
    *,
    threads: int | None = 1,
    clock: Callable[[], float] = time.perf_counter,
    on_epoch_end: Callable[[SchNetState], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train SchNet in ``folder`` until the budget is spent (resuming), then score the test set.

    Args:
        dataset: Cutoff graphs (see :func:`cutoff_data`).
        rows: Train, val and test rows of ``dataset``.
        folder: Output folder (``checkpoint.pt``, ``result.json``); a lock beside it keeps
            other processes out.
        budget: Training seconds or epochs (a larger budget continues a finished run).
        settings: Model and optimiser settings (default: :class:`SchNetSettings`).
        threads: torch threads while training (None: leave as is).
        clock: Seconds of a monotonic clock (tests may replace it).
        on_epoch_end: Called after each epoch's checkpoint is written.
        log: Where progress lines go.

    Returns:
        The result (also written to ``folder/result.json``): test metrics of the
        best-validation weights, epochs, training seconds, parameters, settings, history.

    Raises:
        DataError: If another process trains in ``folder``, the folder holds a run with other
            settings or data, or the time budget ran out before the first epoch finished.
    """
    settings = settings or SchNetSettings()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with run_dir_lock(folder):
        previous = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            return _train(dataset, rows, folder, budget, settings, clock, on_epoch_end, log)
        finally:
            torch.set_num_threads(previous)


def _train(
    dataset: GraphDataset,
    rows: Split,
    folder: Path,
    budget: Budget,
    settings: SchNetSettings,
    clock: Callable[[], float],
    on_epoch_end: Callable[[SchNetState], None] | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    fingerprint = data_fingerprint(dataset, rows)
    targets = np.asarray(dataset.targets[:, 0], dtype=np.float64)
    mean, std = float(targets[rows.train].mean()), float(targets[rows.train].std() or 1.0)
    torch.manual_seed(settings.seed)
    model, graph = build_schnet(settings)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    state = SchNetState()
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    path = folder / CHECKPOINT
    if path.is_file():
        saved = load_checkpoint(path)
        if saved["settings"] != asdict(settings) or saved["data"] != fingerprint:
            raise DataError(
                f"'{folder}' holds a SchNet run with other settings or data; choose another "
                "folder or delete it"
            )
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        best_state = saved["best_model"]
        state = SchNetState(**saved["state"])
        state.stopped = ""  # the budget may be larger now
        torch.set_rng_state(saved["torch_rng"])
        log(f"resuming {folder} after epoch {state.epoch} ({state.elapsed_seconds:.0f} s used)")
        done = _saved_result(folder, state, fingerprint)
        if done is not None and budget.spent(state.elapsed_seconds, state.epoch):
            log(f"{folder}: the budget is spent and result.json scores epoch {state.epoch}")
            return done

    def forward(batch: Batch) -> torch.Tensor:
        graph.edges = (torch.stack([batch.neighbors, batch.centers]), batch.distance)
        return model(batch.numbers, batch.positions, batch.graph_index).squeeze(-1)

    def predict(indices: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            out = [
                forward(b).double().numpy() * std + mean
                for b in iterate_batches(dataset, indices, settings.eval_batch_size)
            ]
        model.train()
        return np.concatenate(out)

    def payload() -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "best_model": best_state,
            "state": asdict(state),
            "torch_rng": torch.get_rng_state(),
            "settings": asdict(settings),
            "data": fingerprint,
        }

    n_batches = math.ceil(rows.train.size / settings.batch_size)
    started = clock() - state.elapsed_seconds
    model.train()
    while not budget.spent(state.elapsed_seconds, state.epoch):
        epoch = state.epoch
        order = np.random.default_rng(settings.seed + epoch).permutation(rows.train)
        epoch_start, total = clock(), 0.0
        for step, batch in enumerate(iterate_batches(dataset, order, settings.batch_size)):
            phase = budget.phase(clock() - started, epoch + step / n_batches)
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(settings, phase)
            optimizer.zero_grad(set_to_none=True)
            target = (batch.targets[:, 0] - mean) / std
            error = forward(batch) - target
            if settings.loss == "mae":
                loss = error.abs().mean()
            else:
                loss = torch.sqrt((error**2).mean() + 1e-12)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            total += float(loss.detach()) * batch.num_graphs
            if (
                budget.seconds is not None
                and step + 1 < n_batches
                and clock() - started >= budget.seconds
            ):
                _stop_within_epoch(path, state, clock() - started, step + 1, budget, log)
                break
        else:
            train_seconds = clock() - epoch_start
            val = regression_metrics(targets[rows.val], predict(rows.val))
            state.epoch = epoch + 1
            if val["mae"] < state.best_val_mae:
                state.best_val_mae, state.best_epoch = val["mae"], state.epoch
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            state.elapsed_seconds = clock() - started
            state.discarded_batches = 0
            state.history.append(
                {
                    "epoch": state.epoch,
                    "train_loss": total / rows.train.size,
                    "val_mae": val["mae"],
                    "epoch_train_seconds": train_seconds,
                    "elapsed_seconds": state.elapsed_seconds,
                }
            )
            if budget.spent(state.elapsed_seconds, state.epoch):
                state.stopped = budget.describe()
            save_checkpoint(path, payload())
            log(
                f"schnet epoch {state.epoch}  val_mae {val['mae']:.4g}  "
                f"{state.elapsed_seconds:.0f} s{'  *' if state.best_epoch == state.epoch else ''}"
            )
            if on_epoch_end is not None:
                on_epoch_end(state)
            continue
        break  # the budget ran out within the epoch
    if state.epoch == 0:  # only when an epoch-count budget is already spent at 0 epochs
        raise DataError(f"no SchNet epoch finished in '{folder}'")
    if not state.stopped:  # resumed with the budget already spent
        state.stopped = budget.describe()
    model.load_state_dict(best_state)
    test = regression_metrics(targets[rows.test], predict(rows.test))
    result = {
        "model": "PyG SchNet",
        "test": test,
        "epochs": state.epoch,
        "best_epoch": state.best_epoch,
        "best_val_mae": state.best_val_mae,
        "train_seconds": state.elapsed_seconds,
        "stopped": state.stopped,
        "discarded_batches": state.discarded_batches,
        "budget": asdict(budget),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "settings": asdict(settings),
        "lr_schedule": "cosine from lr to min_lr over the budget (per batch)",
        "split_sizes": {
            "train": int(rows.train.size),
            "val": int(rows.val.size),
            "test": int(rows.test.size),
        },
        "threads": torch.get_num_threads(),
        "data_fingerprint": fingerprint,
        "history": state.history,
    }
    write_json_atomic(folder / RESULT, result)
    return result


def _saved_result(folder: Path, state: SchNetState, fingerprint: str) -> dict[str, Any] | None:
    """The folder's result.json when it scores the checkpoint's run as it stands, else None."""
    path = folder / RESULT
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    same = result.get("epochs") == state.epoch and result.get("data_fingerprint") == fingerprint
    return result if same and result.get("best_epoch") == state.best_epoch else None


def _stop_within_epoch(
    path: Path, state: SchNetState, elapsed: float, done: int, budget: Budget, log: Callable
) -> None:
    """Record a budget that ran out inside an epoch; that partial epoch is not kept."""
    if state.epoch == 0:
        raise DataError(
            f"the SchNet time budget ({budget.seconds:.0f} s) ran out after {done} batches of "
            "the first epoch, before any epoch was finished; raise the budget"
        )
    state.elapsed_seconds = elapsed
    state.stopped = budget.describe()
    state.discarded_batches = done
    saved = load_checkpoint(path)
    saved["state"] = asdict(state)
    save_checkpoint(path, saved)
    log(
        f"{state.stopped} after {done} batches of epoch {state.epoch + 1}: that epoch is not "
        f"kept, the checkpoint holds epoch {state.epoch}"
    )
