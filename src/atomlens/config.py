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
    model_validator,
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
    """How the records are split into train/val/test.

    Sizes (fractions or counts) and a seed carve the parts from the data source, or
    ``file`` lists them (record ids or indices); a part may instead be a file of its own
    (``train_source``/``val_source``/``test_source``). By default val and test are 10 %
    each, unless they come from their own files.
    """

    model_config = ConfigDict(extra="forbid")

    train: float | int | None = None
    val: float | int | None = None
    test: float | int | None = None
    seed: int = 0
    file: str | None = Field(
        None, description="JSON file with train/val/test lists of record ids or indices"
    )
    train_source: str | None = Field(
        None, description="structure file (any format ASE reads) holding the training records"
    )
    val_source: str | None = Field(
        None, description="structure file holding the validation records"
    )
    test_source: str | None = Field(None, description="structure file holding the test records")

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

    @model_validator(mode="after")
    def _one_rule_per_part(self) -> SplitConfig:
        """Sizes, a split file and a part's own file do not mix; default sizes filled in."""
        sized = [part for part in ("train", "val", "test") if getattr(self, part) is not None]
        if self.file is not None:
            if sized:
                raise ValueError(
                    f"split.file lists the records: remove split.{', split.'.join(sized)}"
                )
            return self
        for part in sized:
            if getattr(self, f"{part}_source") is not None:
                raise ValueError(
                    f"split.{part} and split.{part}_source exclude each other (the file "
                    f"holds the {part} records)"
                )
        if self.val is None and self.val_source is None:
            self.val = 0.1
        if self.test is None and self.test_source is None:
            self.test = 0.1
        return self


class DataConfig(BaseModel):
    """Where the structures and labels come from and how graphs are built."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        None,
        description="qm9, matbench:<task>, or a structure file with labels (may be omitted "
        "when split.train_source is given)",
    )
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
                f"data.unit is '{self.unit}' but the label '{self.target}' of "
                f"'{self.source or self.split.train_source}' "
                f"is in {known}; remove data.unit or set it to '{known}'"
            )
        return self.unit or known

    @model_validator(mode="after")
    def _pool(self) -> DataConfig:
        """The records come from data.source or split.train_source (one file, not two)."""
        train_source = self.split.train_source
        if self.source is None and train_source is None:
            raise ValueError("data.source is required (or give data.split.train_source)")
        if self.source is not None and train_source is not None and self.source != train_source:
            raise ValueError(
                f"data.source '{self.source}' and data.split.train_source '{train_source}' "
                "differ: give one of them"
            )
        return self


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
