"""The training loop: run directory, metrics.csv, checkpoints, resume, early stopping.

:class:`Trainer` runs a small epoch loop; everything that happens after an epoch (stop
rules, checkpoints, the metrics row, the log line) is a :class:`Callback`. The checkpoint
of an epoch is written before its metrics row and carries that row, so a run killed
between the two repairs ``metrics.csv`` when it resumes.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.nn import functional as F  # noqa: N812

from atomlens.batching import Batch, iterate_batches
from atomlens.config import TrainConfig, dump_config, validate_config
from atomlens.datasets import GraphDataset
from atomlens.datasets.cache import library_versions
from atomlens.datasets.run_data import SPLIT_FILE, RunData, prepare_run_data
from atomlens.datasets.splits import target_statistics
from atomlens.device import Prefetcher, autocast, model_device, resolve_device, to_device
from atomlens.errors import DataError
from atomlens.files import (
    remove_stale_temporary_files,
    write_csv,
    write_json_atomic,
    write_text_atomic,
)
from atomlens.locks import exclusive
from atomlens.models import build_model, graph_spec
from atomlens.training.checkpoint import load_checkpoint, save_checkpoint
from atomlens.training.distributed import (
    DistInfo,
    barrier,
    init_distributed,
    max_parameter_difference,
    shutdown,
    wrap_model,
)
from atomlens.training.metrics import regression_metrics
from atomlens.training.scaling import Scaling

log = logging.getLogger(__name__)

METRIC_COLUMNS = [
    "epoch",
    "train_loss",
    "val_mae",
    "val_rmse",
    "lr",
    "epoch_seconds",
    "structures_per_s",
]

PREFETCH_DEPTH = 2  # collated batches waiting for the model


@dataclass
class TrainState:
    """Progress saved in every checkpoint."""

    epoch: int = 0  # epochs finished
    best_val_mae: float = math.inf
    best_epoch: int = 0
    elapsed_seconds: float = 0.0
    stopped: str = ""
    discarded_batches: int = 0  # of an epoch cut by the time budget (not kept)


@dataclass(frozen=True)
class EpochResult:
    """What one finished epoch measured.

    Attributes:
        epoch: Number of the epoch (1-based; equals ``state.epoch`` after it).
        train_loss: Mean training loss (scaled units) over this rank's structures.
        val: Validation metrics (``mae``, ``rmse``, ...), physical units.
        lr: Learning rate of the epoch (of its first batch under ``cosine_budget``).
        seconds: Wall time of the training part of the epoch.
        structures_per_s: Training throughput over all ranks.
        improved: True when the validation MAE is the best so far.
    """

    epoch: int
    train_loss: float
    val: dict[str, float]
    lr: float
    seconds: float
    structures_per_s: float
    improved: bool

    def row(self) -> list[float | int]:
        """The epoch's ``metrics.csv`` row (see METRIC_COLUMNS)."""
        return [
            self.epoch,
            self.train_loss,
            self.val["mae"],
            self.val["rmse"],
            self.lr,
            round(self.seconds, 3),
            round(self.structures_per_s, 2),
        ]


class Callback:
    """Something done after every epoch; subclasses override the hooks they need."""

    def on_train_start(self, trainer: Trainer) -> None:
        """Called once before the first epoch of this call (also on resume)."""

    def on_epoch_end(self, trainer: Trainer, result: EpochResult) -> None:
        """Called on every rank after each epoch, in the order of the callback list."""

    def stop_reason(self, trainer: Trainer) -> str:
        """Why training must stop now (empty: go on); checked after every epoch."""
        return ""


class EarlyStopping(Callback):
    """Stop when the validation MAE has not improved for ``training.patience`` epochs."""

    def stop_reason(self, trainer: Trainer) -> str:  # noqa: D102
        state, patience = trainer.state, trainer.config.training.patience
        if state.epoch and state.epoch - state.best_epoch >= patience:
            return f"early stopping: no improvement for {patience} epochs"
        return ""


class TimeBudget(Callback):
    """Stop when ``training.max_minutes`` of training time are used.

    This rule is checked after each epoch (and when a run resumes); the trainer also checks
    the budget after every batch and then stops within the epoch (see
    :meth:`Trainer.train_epoch`).
    """

    def stop_reason(self, trainer: Trainer) -> str:  # noqa: D102
        if trainer.state.elapsed_seconds >= budget_seconds(trainer.config):
            return budget_reason(trainer.config)
        return ""


def budget_seconds(config: TrainConfig) -> float:
    """The time budget ``training.max_minutes`` in seconds (infinite without one)."""
    minutes = config.training.max_minutes
    return math.inf if minutes is None else 60.0 * minutes


def budget_reason(config: TrainConfig) -> str:
    """The stop reason of a run whose time budget is used up."""
    return f"time budget of {config.training.max_minutes} min reached"


class Checkpointer(Callback):
    """Write ``checkpoints/last.pt`` (and ``best.pt`` on improvement) on the main rank.

    The payload holds the epoch's metrics row so a resumed run can restore the row when
    the process died before writing it.
    """

    def on_epoch_end(self, trainer: Trainer, result: EpochResult) -> None:  # noqa: D102
        if not trainer.info.is_main:
            return
        payload = trainer.checkpoint_payload(result.row())
        folder = trainer.run_dir / "checkpoints"
        if result.improved:
            save_checkpoint(folder / "best.pt", payload)
        save_checkpoint(folder / "last.pt", payload)


class MetricsCsv(Callback):
    """Append one row per epoch to ``metrics.csv`` (main rank); repair it on resume."""

    def on_train_start(self, trainer: Trainer) -> None:  # noqa: D102
        if not trainer.info.is_main:
            return
        path = trainer.metrics_file
        if not path.is_file():
            write_csv(path, METRIC_COLUMNS, [])
            return
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))[1:]
        # Rows after the checkpoint (killed before the checkpoint was renamed into place)
        # and repeated epochs go; the checkpoint's own row comes back if it is missing.
        kept: dict[int, list[Any]] = {}
        for row in rows:
            epoch = int(row[0])
            if epoch <= trainer.state.epoch:
                kept.setdefault(epoch, row)
        saved = trainer.resumed_row
        if saved is not None and trainer.state.epoch not in kept:
            kept[trainer.state.epoch] = list(saved)
        repaired = [kept[e] for e in sorted(kept)]
        if repaired != rows:
            log.info("repaired %s: %d rows kept", path, len(repaired))
            write_csv(path, METRIC_COLUMNS, repaired)

    def on_epoch_end(self, trainer: Trainer, result: EpochResult) -> None:  # noqa: D102
        if trainer.info.is_main:
            with trainer.metrics_file.open("a", newline="") as handle:
                csv.writer(handle).writerow(result.row())


class ProgressLog(Callback):
    """One INFO line per epoch on the main rank."""

    def on_epoch_end(self, trainer: Trainer, result: EpochResult) -> None:  # noqa: D102
        if trainer.info.is_main:
            log.info(
                "epoch %d/%d  train_loss %.4f  val_mae %.4g  lr %.2e  %.1fs  %.0f structures/s%s",
                result.epoch,
                trainer.config.training.epochs,
                result.train_loss,
                result.val["mae"],
                result.lr,
                result.seconds,
                result.structures_per_s,
                "  *" if result.improved else "",
            )


def default_callbacks() -> list[Callback]:
    """Stop rules, checkpoint, metrics row, log line (in this order)."""
    return [EarlyStopping(), TimeBudget(), Checkpointer(), MetricsCsv(), ProgressLog()]


def prepare_data(
    config: TrainConfig, info: DistInfo, run_dir: Path, *, use_saved_split: bool = True
) -> RunData:
    """The run's split (from the config) and the cached graphs of the records it uses.

    The main process builds the missing graphs first; the others then find them cached.
    A ``split.json`` already in ``run_dir`` must equal the resolved split (unless
    ``use_saved_split`` is False: the run is being replaced); saving the split is the
    caller's job.
    """
    data = config.data
    graph = graph_spec(config.model, data.graph)
    saved = run_dir / SPLIT_FILE if use_saved_split else None
    if info.is_main:
        run = prepare_run_data(data, graph, saved_split=saved)
    barrier(info)
    if not info.is_main:
        run = prepare_run_data(data, graph, saved_split=saved, progress=False)
    return run


def learning_rate(config: TrainConfig, epoch: int, elapsed_seconds: float = 0.0) -> float:
    """Learning rate for a (0-based) epoch under the configured schedule.

    ``cosine_budget`` follows the share of the time budget already used (the trainer sets
    it before every batch), so a run cut by ``max_minutes`` ends its schedule at ``min_lr``.
    """
    t = config.training
    if t.scheduler == "constant":
        return t.lr
    if t.scheduler == "cosine_budget":
        phase = min(elapsed_seconds / budget_seconds(config), 1.0)
    else:
        period = t.epochs if t.scheduler == "cosine" else t.restart_epochs
        phase = (epoch % period) / period
    return cosine(t.lr, t.min_lr, phase)


def cosine(lr: float, min_lr: float, phase: float) -> float:
    """Cosine decay from ``lr`` at phase 0 to ``min_lr`` at phase 1."""
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * phase))


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


def device_batches(
    dataset: GraphDataset, indices: np.ndarray, batch_size: int, device: torch.device
) -> Prefetcher[Batch]:
    """Batches over ``indices`` collated in a background thread, ready to move to ``device``.

    On CUDA they are pinned so that ``to_device(..., non_blocking=True)`` copies
    asynchronously. Close the returned prefetcher when stopping early.
    """
    return Prefetcher(
        iterate_batches(dataset, indices, batch_size),
        depth=PREFETCH_DEPTH,
        pin_memory=device.type == "cuda",
    )


@torch.no_grad()
def predict_indices(
    model: torch.nn.Module,
    dataset: GraphDataset,
    indices: np.ndarray,
    scaling: Scaling,
    batch_size: int,
    precision: str = "fp32",
) -> np.ndarray:
    """Predictions in physical units for dataset rows ``indices`` (in order), on the CPU.

    Batches go to the model's device; ``precision`` selects the autocast dtype.
    """
    model.eval()
    device = model_device(model)
    parts = []
    with device_batches(dataset, indices, batch_size, device) as batches:
        for batch in batches:
            with autocast(device, precision):
                output = model(to_device(batch, device, non_blocking=True))["prediction"]
            parts.append(scaling.to_physical(output.float()).cpu().numpy())
    return np.concatenate(parts) if parts else np.empty(0)


# Training settings that may change when a run is resumed (e.g. to train longer).
RESUMABLE_CHANGES = ("epochs", "max_minutes", "patience", "threads", "device")


# Files of a run that --overwrite replaces (only after the new config and data validated).
RUN_FILES = (
    "checkpoints/last.pt",
    "checkpoints/best.pt",
    "metrics.csv",
    "split.json",
    "metadata.json",
    "training_summary.json",
)


def _check_run_dir(run_dir: Path, config: TrainConfig, overwrite: bool) -> str:
    """What to do with the run directory: ``new``, ``resume`` or ``replace`` (nothing deleted).

    Raises:
        DataError: If it holds a run with another configuration and ``overwrite`` is False.
    """
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return "new"
    if _comparable(_normalised(yaml.safe_load(saved.read_text()))) == _comparable(
        config.model_dump(mode="json")
    ):
        return "resume" if (run_dir / "checkpoints" / "last.pt").is_file() else "new"
    if overwrite:
        return "replace"
    raise DataError(
        f"run directory '{run_dir}' holds a run with a different configuration (only "
        f"training.{', training.'.join(RESUMABLE_CHANGES)} may change on resume); "
        "choose another run_dir or pass --overwrite"
    )


def _normalised(raw: Any) -> dict[str, Any]:
    """A saved config with today's defaults filled in (raw when it no longer validates)."""
    try:
        return validate_config(raw).model_dump(mode="json")
    except (DataError, TypeError):
        return raw if isinstance(raw, dict) else {}


def _comparable(raw: dict[str, Any]) -> dict[str, Any]:
    training = {k: v for k, v in raw.get("training", {}).items() if k not in RESUMABLE_CHANGES}
    # Where the (content-addressed) graph cache lives and the unit's name do not change a run.
    data = {k: v for k, v in raw.get("data", {}).items() if k not in ("cache_dir", "unit")}
    return raw | {"training": training, "data": data}


def train(
    config: TrainConfig,
    *,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: list[Callback] | None = None,
) -> Path:
    """Train a SCANN or SEN model as configured; resumes an interrupted run with the same config.

    Process-wide torch settings changed for training (thread count, deterministic
    algorithms) are restored when it returns or raises. Progress goes to the ``atomlens``
    logger (INFO).

    Args:
        config: The validated configuration.
        overwrite: Replace a run with a different config in the same run directory.
        progress: Show a progress bar per epoch (on a terminal).
        callbacks: Extra callbacks, run after the default ones.

    Returns:
        The run directory (config.yaml, metadata.json, metrics.csv, split.json,
        checkpoints/best.pt and last.pt).
    """
    device = resolve_device(config.training.device)
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    info = init_distributed(device)
    try:
        with contextlib.ExitStack() as held:
            if info.is_main:  # one process per run directory (the ranks of one job share it)
                held.enter_context(run_dir_lock(Path(config.run_dir)))
            trainer = Trainer(config, info, overwrite=overwrite, progress=progress)
            trainer.callbacks.extend(callbacks or [])
            return trainer.run()
    finally:
        shutdown(info)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def _warn_if_not_size_consistent(config: TrainConfig, dataset: GraphDataset) -> None:
    """Warn when crystals are trained with global attention that changes with the supercell."""
    mode = getattr(config.model, "global_attention", None)
    if mode == "paper" and bool(np.asarray(dataset.arrays["pbc"]).any()):
        log.warning(
            "periodic structures with model.global_attention=paper: predictions and attention "
            "change with the choice of supercell; model.global_attention=size_consistent "
            "does not (the crystal configs use it)"
        )


def run_dir_lock(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock on a run directory (a hidden lock file beside it); refuses if held."""
    lock_file = run_dir.absolute().parent / f".{run_dir.absolute().name}.lock"
    return exclusive(lock_file, f"run directory '{run_dir}'", wait=False)


class Trainer:
    """One training run: set-up, resume, the epoch loop and its callbacks.

    Attributes:
        config: The run's configuration.
        info: Rank, world size and device of this process.
        state: Progress (saved in checkpoints).
        callbacks: Called after every epoch, in order.
        run_dir: The run directory.
        data: The run's split (record indices, as in split.json) and graphs (set by
            :meth:`setup`); ``dataset`` and ``split`` are its data set and the split's rows.
        unit: The target's unit ("" if none; set by :meth:`setup`).
        clock: Seconds of a monotonic clock; the time budget and timings follow it.
    """

    def __init__(
        self,
        config: TrainConfig,
        info: DistInfo,
        *,
        overwrite: bool = False,
        progress: bool = True,
        callbacks: list[Callback] | None = None,
    ):
        self.config = config
        self.info = info
        self.device = info.device
        self.overwrite = overwrite
        self.progress = progress
        self.callbacks = default_callbacks() if callbacks is None else list(callbacks)
        self.run_dir = Path(config.run_dir)
        self.metrics_file = self.run_dir / "metrics.csv"
        self.state = TrainState()
        self.resumed_row: list[Any] | None = None
        self.clock: Callable[[], float] = time.perf_counter  # seconds; tests may replace it
        self._started = 0.0

    # -- set-up ---------------------------------------------------------------------------

    def setup(self) -> None:
        """Prepare the run directory, data, model and optimiser; load the last checkpoint."""
        t, info = self.config.training, self.info
        if t.scheduler == "cosine_budget" and info.world_size > 1:
            raise DataError("scheduler cosine_budget follows each process's clock: use one process")
        if t.threads:
            torch.set_num_threads(t.threads)
        if self.device.type == "cpu":  # cheap there; on CUDA it would slow the scatters
            torch.use_deterministic_algorithms(True, warn_only=True)
        action = "new"
        if info.is_main:
            action = _check_run_dir(self.run_dir, self.config, self.overwrite)
        barrier(info)
        if not info.is_main:
            action = "resume" if (self.run_dir / "checkpoints" / "last.pt").is_file() else "new"
        resume = action == "resume"

        # Config and data are validated before anything of an old run is replaced.
        self.data = prepare_data(
            self.config, info, self.run_dir, use_saved_split=action != "replace"
        )
        self.dataset, self.split = self.data.dataset, self.data.rows  # rows of the dataset
        data = self.config.data
        self.unit = data.resolve_unit(self.dataset.manifest["units"].get(data.target, ""))
        if info.is_main:
            _warn_if_not_size_consistent(self.config, self.dataset)
        if info.is_main:
            if action == "replace":
                for name in RUN_FILES:
                    (self.run_dir / name).unlink(missing_ok=True)
                log.info("replaced the earlier run in %s (--overwrite)", self.run_dir)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for stale in remove_stale_temporary_files(self.run_dir / "checkpoints"):
                log.info("removed %s, left by a killed checkpoint write", stale)
            write_text_atomic(self.run_dir / "config.yaml", dump_config(self.config))
            if not (self.run_dir / SPLIT_FILE).is_file():  # else it equals self.data.split
                self.data.split.save(self.run_dir / SPLIT_FILE)
        barrier(info)
        targets = self.dataset.targets
        mean, std = target_statistics(targets, self.split.train)
        self.scaling = Scaling(float(mean[0]), float(std[0]))
        if self.config.model.output_activation != "none":  # keep the sign: scale only
            self.scaling = Scaling(0.0, float(np.abs(targets[self.split.train]).mean() or 1.0))

        torch.manual_seed(t.seed)
        self.model = build_model(self.config.model).to(self.device)
        self.optimizer = make_optimizer(self.model, self.config)
        self.scaler = self._grad_scaler()
        if resume:
            self._resume()
        self.wrapped = wrap_model(self.model, info)
        if info.is_main:
            _write_metadata(self)
            log.debug(
                "training on %s (%s, %d process(es)): %d parameters, %d/%d/%d structures",
                self.device,
                t.precision,
                info.world_size,
                sum(p.numel() for p in self.model.parameters()),
                self.split.train.size,
                self.split.val.size,
                self.split.test.size,
            )

    def _grad_scaler(self) -> torch.amp.GradScaler | None:
        """A gradient scaler for fp16 (None for fp32 and bf16)."""
        if self.config.training.precision != "fp16":
            return None
        try:
            return torch.amp.GradScaler(self.device.type)
        except (RuntimeError, ValueError) as exc:
            raise DataError(f"precision fp16 is not supported on {self.device}: {exc}") from None

    def _resume(self) -> None:
        checkpoint = load_checkpoint(self.run_dir / "checkpoints" / "last.pt")
        self.model.load_state_dict(checkpoint["model"], strict=True)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.state = TrainState(**checkpoint["state"])
        self.state.stopped = ""  # the config may allow more now
        self.state.stopped = self._stop_reason()
        torch.set_rng_state(checkpoint["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in checkpoint:
            torch.cuda.set_rng_state(checkpoint["cuda_rng"], self.device)
        if self.scaler is not None and "grad_scaler" in checkpoint:
            self.scaler.load_state_dict(checkpoint["grad_scaler"])
        self.resumed_row = checkpoint.get("metrics_row")
        if self.info.is_main:
            log.info("resuming %s after epoch %d", self.run_dir, self.state.epoch)

    def checkpoint_payload(self, metrics_row: list[Any]) -> dict[str, Any]:
        """Everything a resumed run needs, plus the metrics row of the epoch just finished."""
        payload: dict[str, Any] = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "state": asdict(self.state),
            "torch_rng": torch.get_rng_state(),
            "metrics_row": metrics_row,
        }
        if self.device.type == "cuda":
            payload["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if self.scaler is not None:
            payload["grad_scaler"] = self.scaler.state_dict()
        return payload

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> Path:
        """Train until the epochs are done or a callback stops the run; returns the run dir."""
        self.setup()
        for callback in self.callbacks:
            callback.on_train_start(self)
        barrier(self.info)
        self._started = self.clock() - self.state.elapsed_seconds
        t = self.config.training
        while self.state.epoch < t.epochs and not self.state.stopped:
            result = self.train_epoch()
            if result is None:  # the time budget ran out within the epoch
                break
            for callback in self.callbacks:
                callback.on_epoch_end(self, result)
            barrier(self.info)
        self._finish()
        return self.run_dir

    def _stop_reason(self) -> str:
        return next((r for c in self.callbacks if (r := c.stop_reason(self))), "")

    def _elapsed(self) -> float:
        """Seconds of training used by the run (earlier calls included)."""
        return self.clock() - self._started

    def _out_of_time(self) -> bool:
        """True when the time budget is used up (all ranks agree; checked after each batch).

        With a budget the device is synchronised first, so that the clock covers the work
        queued on an accelerator, not only the work launched.
        """
        budget = budget_seconds(self.config)
        if math.isinf(budget):
            return False
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()
        out = self._elapsed() >= budget
        if self.info.world_size > 1:  # every rank must stop after the same batch
            flag = torch.tensor(float(out), device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            out = bool(flag.item())
        return out

    def train_epoch(self) -> EpochResult | None:
        """Train one epoch, validate, update the state; returns the epoch's measurements.

        When the time budget runs out before the epoch's last batch, training stops after
        the current batch: the epoch is not validated nor checkpointed (the checkpoint of
        the last finished epoch stands; see :meth:`_stop_within_epoch`); returns None.
        """
        t, info, state = self.config.training, self.info, self.state
        epoch = state.epoch
        lr = learning_rate(self.config, epoch, self._elapsed())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        order = np.random.default_rng(t.seed + epoch).permutation(self.split.train)
        usable = len(order) - len(order) % info.world_size
        shard = order[info.rank : usable : info.world_size]
        self.wrapped.train()
        epoch_start = self.clock()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        n_batches = math.ceil(len(shard) / t.batch_size)
        from tqdm.auto import tqdm

        with device_batches(self.dataset, shard, t.batch_size, self.device) as batches:
            bar = tqdm(
                batches,
                total=n_batches,
                leave=False,
                desc=f"epoch {epoch + 1}/{t.epochs}",
                disable=None if (self.progress and info.is_main) else True,
            )
            for step, batch in enumerate(bar):
                if step and t.scheduler == "cosine_budget":  # follows the clock batch by batch
                    for group in self.optimizer.param_groups:
                        group["lr"] = learning_rate(self.config, epoch, self._elapsed())
                batch = to_device(batch, self.device, non_blocking=True)
                loss = self._step(batch)
                total += loss * batch.num_graphs
                count += batch.num_graphs
                if not bar.disable and step % 10 == 0:
                    bar.set_postfix(loss=f"{loss.item():.4f}")
                if step + 1 < n_batches and self._out_of_time():  # the last one: validate
                    bar.close()
                    self._stop_within_epoch(step + 1, n_batches)
                    return None
            bar.close()
        train_loss = total.item() / max(count, 1)  # waits for the device
        if not math.isfinite(train_loss):
            raise DataError(
                f"the loss became {train_loss} in epoch {epoch + 1}; lower training.lr or "
                "check the labels"
            )
        seconds = self.clock() - epoch_start
        val = regression_metrics(
            self.dataset.targets[self.split.val, 0],
            predict_indices(
                self.model,
                self.dataset,
                self.split.val,
                self.scaling,
                t.eval_batch_size,
                t.precision,
            ),
        )
        state.epoch = epoch + 1
        state.elapsed_seconds = self._elapsed()
        state.discarded_batches = 0
        improved = val["mae"] < state.best_val_mae
        if improved:
            state.best_val_mae, state.best_epoch = val["mae"], state.epoch
        state.stopped = self._stop_reason()
        return EpochResult(
            epoch=state.epoch,
            train_loss=train_loss,
            val=val,
            lr=lr,
            seconds=seconds,
            structures_per_s=count * info.world_size / max(seconds, 1e-9),
            improved=improved,
        )

    def _stop_within_epoch(self, done: int, n_batches: int) -> None:
        """Stop on the time budget after ``done`` of the ``n_batches`` batches of an epoch.

        The partial epoch is dropped: ``last.pt`` keeps the model of the last finished epoch
        and gains the stop reason and the time used, so running the config again does not
        train beyond the budget (a larger ``max_minutes`` resumes from that epoch).

        Raises:
            DataError: If the budget ran out within the first epoch (no model to keep).
        """
        state, info = self.state, self.info
        if state.epoch == 0:
            raise DataError(
                f"the time budget training.max_minutes={self.config.training.max_minutes} ran "
                f"out after {done} of {n_batches} batches of the first epoch, before any "
                "epoch was finished and saved; raise training.max_minutes"
            )
        state.elapsed_seconds = self._elapsed()
        state.stopped = budget_reason(self.config)
        state.discarded_batches = done
        last = self.run_dir / "checkpoints" / "last.pt"
        if info.is_main and last.is_file():
            payload = load_checkpoint(last)
            payload["state"] = asdict(state)
            save_checkpoint(last, payload)
        if info.is_main:
            log.info(
                "%s after %d of %d batches of epoch %d (%.1f s used): that epoch is not "
                "kept, the checkpoints hold epoch %d",
                state.stopped,
                done,
                n_batches,
                state.epoch + 1,
                state.elapsed_seconds,
                state.epoch,
            )
        barrier(info)

    def _step(self, batch: Batch) -> torch.Tensor:
        """One optimiser step; returns the (detached, fp32) loss on the device."""
        t = self.config.training
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, t.precision):
            output = self.wrapped(batch)["prediction"]
        target = self.scaling.to_scaled(batch.targets[:, 0].float())
        loss = loss_fn(t.loss, output.float(), target)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if t.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if t.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            self.optimizer.step()
        return loss.detach()

    def _finish(self) -> None:
        """Check that ranks agree and write training_summary.json."""
        state, info = self.state, self.info
        difference = max_parameter_difference(self.model, info)
        if not info.is_main:
            return
        summary = {
            "epochs": state.epoch,
            "best_epoch": state.best_epoch,
            "best_val_mae": state.best_val_mae,
            "stopped": state.stopped or "epochs done",
            "train_seconds": state.elapsed_seconds,
            "max_minutes": self.config.training.max_minutes,
            "discarded_batches": state.discarded_batches,
            "world_size": info.world_size,
            "device": str(self.device),
            "precision": self.config.training.precision,
            "max_parameter_difference_across_ranks": difference,
        }
        write_json_atomic(self.run_dir / "training_summary.json", summary)
        budget = self.config.training.max_minutes
        log.info(
            "done: best val MAE %.4g at epoch %d (%s); %.1f min of training%s; run directory %s",
            state.best_val_mae,
            state.best_epoch,
            summary["stopped"],
            state.elapsed_seconds / 60,
            "" if budget is None else f" (budget {budget} min)",
            self.run_dir,
        )


def dataset_periodicity(dataset: GraphDataset) -> bool | None:
    """True if every structure is periodic, False if none is, None for a mix."""
    periodic = np.asarray(dataset.arrays["pbc"]).any(axis=1)
    return bool(periodic[0]) if periodic.size and (periodic == periodic[0]).all() else None


def _write_metadata(trainer: Trainer) -> None:
    config, dataset, split = trainer.config, trainer.dataset, trainer.split
    metadata: dict[str, Any] = {
        "target": config.data.target,
        "unit": trainer.unit,
        "scaling": {"mean": trainer.scaling.mean, "std": trainer.scaling.std},
        "graph": dataset.manifest["graph"],
        "cache_entry": str(dataset.path.absolute()),
        "cache_entries": {k: str(v.absolute()) for k, v in trainer.data.entries.items()},
        "split": {
            "seed": split.seed,
            "train": int(split.train.size),
            "val": int(split.val.size),
            "test": int(split.test.size),
        },
        "elements": sorted(int(z) for z in np.unique(np.asarray(dataset.arrays["numbers"]))),
        "periodic": dataset_periodicity(dataset),
        "parameters": int(sum(p.numel() for p in trainer.model.parameters())),
        "trained_on": {"device": str(trainer.device), "world_size": trainer.info.world_size},
        "versions": library_versions() | {"torch": torch.__version__},
    }
    write_json_atomic(trainer.run_dir / "metadata.json", metadata)
