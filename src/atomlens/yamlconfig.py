"""YAML configuration files: read, apply ``--set`` overrides, validate with pydantic.

Light on purpose (yaml and pydantic only, no torch), so that every command's config,
the spin models' included, reads without loading the neural-network stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from atomlens.errors import DataError

ModelT = TypeVar("ModelT", bound=BaseModel)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set ``a.b.c=value`` entries (values parsed as YAML) in a nested dict."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DataError(f"--set expects KEY=VALUE (e.g. training.epochs=5), got '{item}'")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise DataError(f"--set {key}: '{part}' is not a section")
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError as exc:  # also tags such as !!python/object (safe_load refuses)
            reason = " ".join(str(exc).split())
            raise DataError(
                f"--set {key}: '{value}' is not a valid YAML value ({reason})"
            ) from None
    return raw


def read_yaml_config(path: Path | str, overrides: list[str] | None = None) -> dict[str, Any]:
    """A YAML mapping with ``--set`` overrides applied; errors name the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise DataError(f"config file not found: '{path}'") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"'{path}' is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise DataError(f"cannot read config '{path}': {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise DataError(f"'{path}' is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise DataError(f"'{path}' must hold a mapping at the top level")
    return apply_overrides(raw, overrides or [])


def validate_model(model: type[ModelT], raw: dict[str, Any], where: str) -> ModelT:
    """Validate ``raw`` as ``model``, turning pydantic's errors into one readable DataError."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise DataError(f"invalid configuration in '{where}': " + "; ".join(problems)) from None


def packaged_configs() -> dict[str, str]:
    """Names of the configs shipped with atomlens -> their first comment line."""
    from importlib.resources import files

    out: dict[str, str] = {}
    for entry in sorted(files("atomlens").joinpath("configs").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            first = entry.read_text(encoding="utf-8").partition("\n")[0]
            out[entry.name.removesuffix(".yaml")] = first.lstrip("#").strip()
    return out


def packaged_config_text(name: str) -> str:
    """The YAML text of the packaged config ``name`` (with or without ``.yaml``)."""
    from importlib.resources import files

    stem = name.removesuffix(".yaml")
    names = packaged_configs()
    if stem not in names:
        raise DataError(f"no packaged config '{name}'; choose from {', '.join(names)}")
    return files("atomlens").joinpath("configs", f"{stem}.yaml").read_text(encoding="utf-8")
