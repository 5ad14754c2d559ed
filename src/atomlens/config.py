"""Training configuration: pydantic models (unknown keys are errors) <-> YAML, dotted overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    field_validator,
)

from atomlens.device import DEVICE_PATTERN
from atomlens.errors import DataError
from atomlens.models import MODELS, ModelConfigBase, ScannConfig, model_spec
from atomlens.yamlconfig import apply_overrides, read_yaml_config, validate_model

__all__ = [
    "DataConfig",
    "SplitConfig",
    "TrainConfig",
    "TrainingConfig",
    "apply_overrides",
    "dump_config",
    "load_config",
    "read_yaml_config",
    "validate_config",
    "validate_model",
]


class SplitConfig(BaseModel):
    """Sizes (fractions or counts) and seed of the train/val/test split."""

    model_config = ConfigDict(extra="forbid")

    train: float | int | None = None
    val: float | int = 0.1
    test: float | int = 0.1
    seed: int = 0

    @field_validator("train", "val", "test")
    @classmethod
    def _size(cls, value: float | int | None) -> float | int | None:
        """A count >= 0 or a fraction in [0, 1], checked before any data is loaded."""
        if value is None:
            return value
        if not value >= 0:
            raise ValueError(f"a split size must be >= 0, got {value}")
        if isinstance(value, float) and value > 1:
            raise ValueError(f"a fraction must lie in [0, 1] (an integer is a count), got {value}")
        return value


class DataConfig(BaseModel):
    """Where the structures and labels come from and how graphs are built."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="qm9, matbench:<task>, or a structure file with labels")
    target: str = Field(description="label to learn, e.g. homo or formation_energy_per_atom")
    limit: int | None = Field(None, gt=0)
    graph: dict[str, float | bool | None] = Field(default_factory=dict)
    cache_dir: str | None = Field(
        None, description="graph cache folder (default: $ATOMLENS_CACHE, else ~/.cache/atomlens)"
    )
    skip_invalid: bool = False
    split: SplitConfig = Field(default_factory=SplitConfig)
    unit: str | None = Field(
        None,
        description="unit of the target (free text, e.g. eV/cell) where atomlens knows none; "
        "it must agree with a built-in label's unit",
    )

    @field_validator("unit")
    @classmethod
    def _unit_text(cls, value: str | None) -> str | None:
        """One line of printable text (empty means none)."""
        if value is None:
            return None
        value = value.strip()
        if not value.isprintable():
            raise ValueError(f"a unit is one line of printable text, got {value!r}")
        return value or None

    def resolve_unit(self, known: str) -> str:
        """The target's unit: ``known`` (the source's own unit, "" if none) or ``unit``.

        Raises:
            DataError: If ``unit`` contradicts a unit the source defines for the target.
        """
        if self.unit and known and self.unit != known:
            raise DataError(
                f"data.unit is '{self.unit}' but the label '{self.target}' of '{self.source}' "
                f"is in {known}; remove data.unit or set it to '{known}'"
            )
        return self.unit or known


class TrainingConfig(BaseModel):
    """Optimisation settings (defaults: the reference's, scaled for a CPU)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(100, ge=1)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    lr: float = Field(5e-4, gt=0)
    min_lr: float = Field(5e-5, ge=0)
    scheduler: Literal["cosine", "cosine_budget", "warm_restarts", "constant"] = Field(
        "cosine",
        description="cosine_budget: one cosine over the max_minutes budget (lr set per batch)",
    )
    restart_epochs: int = Field(50, ge=1, description="period of warm restarts")
    weight_decay: float = Field(1e-4, ge=0, description="L2 on dense weight matrices")
    loss: Literal["rmse", "mse", "mae"] = "rmse"
    grad_clip: float | None = Field(10.0, gt=0)
    patience: int = Field(200, ge=1, description="early stopping on validation MAE")
    max_minutes: float | None = Field(
        None, gt=0, description="wall-clock budget, checked after every batch"
    )
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    device: str = Field(
        "auto",
        pattern=DEVICE_PATTERN,
        description="auto (CUDA if available, else CPU), cpu, cuda, cuda:N or mps",
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="autocast dtype of the forward pass (the loss stays in fp32)"
    )


class TrainConfig(BaseModel):
    """Everything ``atomlens train`` needs."""

    @field_validator("training")
    @classmethod
    def _budget_schedule(cls, training: TrainingConfig) -> TrainingConfig:
        """The budget schedule needs a budget."""
        if training.scheduler == "cosine_budget" and training.max_minutes is None:
            raise ValueError("scheduler cosine_budget needs training.max_minutes")
        return training

    model_config = ConfigDict(extra="forbid")

    run_dir: str = "runs/default"
    data: DataConfig
    model: SerializeAsAny[ModelConfigBase] = Field(default_factory=ScannConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)

    @field_validator("model", mode="before")
    @classmethod
    def _choose_model(cls, raw: Any) -> Any:
        """Validate ``model`` as the config of the model its ``name`` selects (default scann)."""
        if not isinstance(raw, dict):
            return raw
        name = raw.get("name", "scann")
        if name not in MODELS:
            raise ValueError(f"unknown model name '{name}'; choose from {sorted(MODELS)}")
        return model_spec(name).config.model_validate(raw)


def load_config(path: Path | str, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config, apply overrides and validate it (clear errors for bad keys)."""
    return validate_config(read_yaml_config(path, overrides), str(path))


def validate_config(raw: dict[str, Any], where: str = "config") -> TrainConfig:
    """Validate a training config dict (see :func:`validate_model`)."""
    return validate_model(TrainConfig, raw, where)


def dump_config(config: TrainConfig) -> str:
    """The resolved config as YAML."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
