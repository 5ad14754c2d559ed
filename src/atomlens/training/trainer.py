"""The training loop: run directory, metrics.csv, checkpoints, resume, early stopping."""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.nn import functional as F  # noqa: N812

from atomlens.batching import Batch, iterate_batches
from atomlens.config import TrainConfig, dump_config
from atomlens.datasets import GraphDataset, Split, build_graph_cache, load_source, make_params
from atomlens.datasets.cache import library_versions
from atomlens.datasets.splits import random_split, target_statistics
from atomlens.errors import DataError
from atomlens.models import build_model, graph_spec
from atomlens.training.checkpoint import load_checkpoint, save_checkpoint
from atomlens.training.distributed import (
    DistInfo,
    barrier,
    init_distributed,
    max_parameter_difference,
    shutdown,
)
from atomlens.training.metrics import regression_metrics
from atomlens.training.scaling import Scaling

METRIC_COLUMNS = [
    "epoch",
    "train_loss",
    "val_mae",
    "val_rmse",
    "lr",
    "epoch_seconds",
    "structures_per_s",
]


@dataclass
class TrainState:
    """Progress saved in every checkpoint."""

    epoch: int = 0  # epochs finished
    best_val_mae: float = math.inf
    best_epoch: int = 0
    elapsed_seconds: float = 0.0
    stopped: str = ""


def prepare_data(config: TrainConfig, info: DistInfo, run_dir: Path) -> tuple[GraphDataset, Split]:
    """Cached graphs of the configured source and the run's saved split."""
    data = config.data
    source = load_source(data.source, targets=[data.target], limit=data.limit)
    kind, graph_params = graph_spec(config.model, data.graph)
    params = make_params(kind, **graph_params)
    cache_args = {"cache_dir": data.cache_dir, "skip_invalid": data.skip_invalid}
    if info.is_main:
        path = build_graph_cache(source, kind, params, **cache_args)
    barrier(info)
    if not info.is_main:
        path = build_graph_cache(source, kind, params, progress=False, **cache_args)
    dataset = GraphDataset(path)
    split_file = run_dir / "split.json"
    if split_file.is_file():
        split = Split.load(split_file)
        if split.n_total != len(dataset):
            raise DataError(
                f"'{split_file}' was made for {split.n_total} records, "
                f"the data set has {len(dataset)}"
            )
    else:
        s = data.split
        split = random_split(len(dataset), train=s.train, val=s.val, test=s.test, seed=s.seed)
        if info.is_main:
            split.save(split_file)
    if split.val.size == 0:
        raise DataError("the validation split is empty; set data.split.val > 0")
    return dataset, split


def learning_rate(config: TrainConfig, epoch: int, elapsed_seconds: float = 0.0) -> float:
    """Learning rate for a (0-based) epoch under the configured schedule.

    ``cosine_budget`` follows the share of the time budget already used, so a run cut
    by ``max_minutes`` still ends its schedule at ``min_lr``.
    """
    t = config.training
    if t.scheduler == "constant":
        return t.lr
    if t.scheduler == "cosine_budget":
        phase = min(elapsed_seconds / (60 * (t.max_minutes or math.inf)), 1.0)
    else:
        period = t.epochs if t.scheduler == "cosine" else t.restart_epochs
        phase = (epoch % period) / period
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1 + math.cos(math.pi * phase))


def loss_fn(kind: str, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The configured training loss."""
    if kind == "mae":
        return F.l1_loss(prediction, target)
    mse = F.mse_loss(prediction, target)
    return torch.sqrt(mse + 1e-12) if kind == "rmse" else mse


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam with L2 on dense weight matrices only (as in the reference)."""
    decay = [
        p
        for n, p in model.named_parameters()
        if n.endswith("weight") and p.dim() == 2 and "embedding" not in n
    ]
    decay_ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in decay_ids]
    return torch.optim.Adam(
        [
            {"params": decay, "weight_decay": config.training.weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ],
        lr=config.training.lr,
    )


@torch.no_grad()
def predict_indices(
    model: torch.nn.Module,
    dataset: GraphDataset,
    indices: np.ndarray,
    scaling: Scaling,
    batch_size: int,
) -> np.ndarray:
    """Predictions in physical units for dataset rows ``indices`` (in order)."""
    model.eval()
    parts = [
        scaling.to_physical(model(batch)["prediction"]).numpy()
        for batch in iterate_batches(dataset, indices, batch_size)
    ]
    return np.concatenate(parts) if parts else np.empty(0)


# Training settings that may change when a run is resumed (e.g. to train longer).
RESUMABLE_CHANGES = ("epochs", "max_minutes", "patience", "threads")


def _check_run_dir(run_dir: Path, config: TrainConfig, overwrite: bool) -> bool:
    """True when an existing run with a compatible config should be resumed."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return False
    if _comparable(yaml.safe_load(saved.read_text())) == _comparable(
        config.model_dump(mode="json")
    ):
        return (run_dir / "checkpoints" / "last.pt").is_file()
    if overwrite:
        for name in ("checkpoints/last.pt", "checkpoints/best.pt", "metrics.csv", "split.json"):
            (run_dir / name).unlink(missing_ok=True)
        return False
    raise DataError(
        f"run directory '{run_dir}' holds a run with a different configuration (only "
        f"training.{', training.'.join(RESUMABLE_CHANGES)} may change on resume); "
        "choose another run_dir or pass --overwrite"
    )


def _comparable(raw: dict[str, Any]) -> dict[str, Any]:
    training = {k: v for k, v in raw.get("training", {}).items() if k not in RESUMABLE_CHANGES}
    return raw | {"training": training}


def train(config: TrainConfig, *, overwrite: bool = False, progress: bool = True) -> Path:
    """Train a SCANN or SEN model as configured; resumes an interrupted run with the same config.

    Returns:
        The run directory (config.yaml, metadata.json, metrics.csv, split.json,
        checkpoints/best.pt and last.pt).
    """
    info = init_distributed()
    try:
        return _train(config, info, overwrite=overwrite, progress=progress)
    finally:
        shutdown(info)


def _train(config: TrainConfig, info: DistInfo, *, overwrite: bool, progress: bool) -> Path:
    t = config.training
    if t.scheduler == "cosine_budget" and info.world_size > 1:
        raise DataError("scheduler cosine_budget follows each process's clock: use one process")
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    run_dir = Path(config.run_dir)
    resume = False
    if info.is_main:
        resume = _check_run_dir(run_dir, config, overwrite)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_config(config))
    barrier(info)
    resume = (run_dir / "checkpoints" / "last.pt").is_file() if not info.is_main else resume

    dataset, split = prepare_data(config, info, run_dir)
    mean, std = target_statistics(dataset.targets, split.train)
    scaling = Scaling(float(mean[0]), float(std[0]))
    if config.model.output_activation != "none":  # keep the sign: scale only
        scaling = Scaling(0.0, float(np.abs(dataset.targets[split.train]).mean() or 1.0))

    torch.manual_seed(t.seed)
    model = build_model(config.model)
    optimizer = make_optimizer(model, config)
    state = TrainState()
    if resume:
        checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt")
        model.load_state_dict(checkpoint["model"], strict=True)
        optimizer.load_state_dict(checkpoint["optimizer"])
        state = TrainState(**checkpoint["state"])
        state.stopped = _stop_reason(state, config)  # the config may allow more now
        torch.set_rng_state(checkpoint["torch_rng"])
        if info.is_main:
            print(f"resuming {run_dir} after epoch {state.epoch}")
    wrapped: torch.nn.Module = model
    if info.world_size > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)

    if info.is_main:
        _write_metadata(run_dir, config, dataset, split, scaling, model)
    metrics_file = run_dir / "metrics.csv"
    if info.is_main and not metrics_file.is_file():
        with metrics_file.open("w", newline="") as handle:
            csv.writer(handle).writerow(METRIC_COLUMNS)

    from tqdm.auto import tqdm

    started = time.perf_counter() - state.elapsed_seconds
    while state.epoch < t.epochs and not state.stopped:
        epoch = state.epoch
        lr = learning_rate(config, epoch, time.perf_counter() - started)
        for group in optimizer.param_groups:
            group["lr"] = lr
        order = np.random.default_rng(t.seed + epoch).permutation(split.train)
        usable = len(order) - len(order) % info.world_size
        shard = order[info.rank : usable : info.world_size]
        wrapped.train()
        epoch_start = time.perf_counter()
        total, count = 0.0, 0
        batches = iterate_batches(dataset, shard, t.batch_size)
        bar = tqdm(
            batches,
            total=math.ceil(len(shard) / t.batch_size),
            leave=False,
            desc=f"epoch {epoch + 1}/{t.epochs}",
            disable=None if (progress and info.is_main) else True,
        )
        for batch in bar:
            loss = _step(wrapped, optimizer, batch, scaling, config)
            total += loss * batch.num_graphs
            count += batch.num_graphs
            bar.set_postfix(loss=f"{loss:.4f}")
        epoch_seconds = time.perf_counter() - epoch_start
        val = regression_metrics(
            dataset.targets[split.val, 0],
            predict_indices(model, dataset, split.val, scaling, t.eval_batch_size),
        )
        state.epoch = epoch + 1
        state.elapsed_seconds = time.perf_counter() - started
        improved = val["mae"] < state.best_val_mae
        if improved:
            state.best_val_mae, state.best_epoch = val["mae"], state.epoch
        state.stopped = _stop_reason(state, config)
        if info.is_main:
            rate = count * info.world_size / epoch_seconds
            with metrics_file.open("a", newline="") as handle:
                csv.writer(handle).writerow(
                    [
                        state.epoch,
                        total / max(count, 1),
                        val["mae"],
                        val["rmse"],
                        lr,
                        round(epoch_seconds, 3),
                        round(rate, 2),
                    ]
                )
            payload = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "state": asdict(state),
                "torch_rng": torch.get_rng_state(),
            }
            if improved:
                save_checkpoint(run_dir / "checkpoints" / "best.pt", payload)
            save_checkpoint(run_dir / "checkpoints" / "last.pt", payload)
            print(
                f"epoch {state.epoch}/{t.epochs}  train_loss {total / max(count, 1):.4f}  "
                f"val_mae {val['mae']:.4g}  lr {lr:.2e}  {epoch_seconds:.1f}s  "
                f"{rate:.0f} structures/s" + ("  *" if improved else ""),
                flush=True,
            )
        barrier(info)

    difference = max_parameter_difference(model, info)
    if info.is_main:
        summary = {
            "epochs": state.epoch,
            "best_epoch": state.best_epoch,
            "best_val_mae": state.best_val_mae,
            "stopped": state.stopped or "epochs done",
            "train_seconds": state.elapsed_seconds,
            "world_size": info.world_size,
            "max_parameter_difference_across_ranks": difference,
        }
        (run_dir / "training_summary.json").write_text(json.dumps(summary, indent=2))
        print(
            f"done: best val MAE {state.best_val_mae:.4g} at epoch {state.best_epoch} "
            f"({summary['stopped']}); run directory {run_dir}"
        )
    return run_dir


def _stop_reason(state: TrainState, config: TrainConfig) -> str:
    """Why training must stop now (empty string: go on)."""
    t = config.training
    if state.epoch and state.epoch - state.best_epoch >= t.patience:
        return f"early stopping: no improvement for {t.patience} epochs"
    if t.max_minutes is not None and state.elapsed_seconds >= 60 * t.max_minutes:
        return f"time budget of {t.max_minutes} min reached"
    return ""


def _step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    scaling: Scaling,
    config: TrainConfig,
) -> float:
    optimizer.zero_grad(set_to_none=True)
    output = model(batch)["prediction"]
    loss = loss_fn(config.training.loss, output, scaling.to_scaled(batch.targets[:, 0]))
    if not torch.isfinite(loss):
        raise DataError(f"the loss became {loss.item()}; lower training.lr or check the labels")
    loss.backward()
    if config.training.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.training.grad_clip)
    optimizer.step()
    return loss.detach().item()


def _write_metadata(
    run_dir: Path,
    config: TrainConfig,
    dataset: GraphDataset,
    split: Split,
    scaling: Scaling,
    model: torch.nn.Module,
) -> None:
    metadata: dict[str, Any] = {
        "target": config.data.target,
        "unit": dataset.manifest["units"].get(config.data.target, ""),
        "scaling": {"mean": scaling.mean, "std": scaling.std},
        "graph": dataset.manifest["graph"],
        "cache_entry": str(dataset.path),
        "split": {
            "seed": split.seed,
            "train": int(split.train.size),
            "val": int(split.val.size),
            "test": int(split.test.size),
        },
        "elements": sorted(int(z) for z in np.unique(np.asarray(dataset.arrays["numbers"]))),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "versions": library_versions() | {"torch": torch.__version__},
    }
    (run_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
