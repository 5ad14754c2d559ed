"""Data sources: structures plus labels, from QM9, extxyz/ASE-db files or MatBench."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atomlens.errors import DataError, StructureError
from atomlens.structures.io import read_structures
from atomlens.structures.record import Structure


@dataclass
class Source:
    """Structures with their labels.

    Attributes:
        name: Short name used for cache folders (e.g. ``qm9``, ``mp_crystals_36k``); the
            same for every ``limit``, as the cache entry holds graphs of any records.
        structures: The structures.
        targets: (M, T) labels; NaN where a label is missing.
        target_names: Names of the T label columns.
        ids: One identifier string per structure.
        fingerprint: Hash identifying the source content and labels (not the limit).
        units: Unit of each target, where known.
        invalid: Frames skipped when loading (``skip_invalid``), each as a dict with
            ``file``, ``frame`` (the file's own numbering), ``id`` and ``reason``.
    """

    name: str
    structures: list[Structure]
    targets: np.ndarray
    target_names: tuple[str, ...]
    ids: list[str]
    fingerprint: str
    units: dict[str, str] = field(default_factory=dict)
    invalid: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.structures)


def load_source(
    spec: str,
    *,
    targets: list[str] | None = None,
    limit: int | None = None,
    id_key: str | None = None,
    skip_invalid: bool = False,
) -> Source:
    """Load a data source from a spec string.

    Args:
        spec: ``qm9``, ``matbench:<task>`` or a path to any file ASE reads
            (extxyz with labels in ``info``, ASE db, ...).
        targets: Label names to keep (default: all numeric labels of the source).
        limit: Keep only the first ``limit`` structures.
        id_key: ``info`` key holding an identifier (default: ``material_id``/``id`` when
            present, else ``<file>:<frame>``).
        skip_invalid: Skip frames of a file that fail structure validation (overlapping
            atoms, NaN coordinates, ...) and list them in ``Source.invalid`` instead of
            raising. ``limit`` still counts the file's frames, skipped ones included.

    Returns:
        The loaded Source.

    Raises:
        DataError: For an empty source, unknown targets or a missing optional package.
        StructureError: Naming the file and frame of the first invalid frame (unless
            ``skip_invalid``).
    """
    if limit is not None and limit <= 0:
        raise DataError(f"limit must be positive, got {limit}")
    if spec == "qm9":
        source = _qm9_source(limit)
    elif spec.startswith("matbench:"):
        from atomlens.datasets.matbench import load_matbench

        source = load_matbench(spec.split(":", 1)[1], limit=limit)
    else:
        source = _file_source(Path(spec), limit, id_key, skip_invalid)
    if not len(source):
        if source.invalid:
            first = source.invalid[0]
            raise DataError(
                f"data source '{spec}': all {len(source.invalid)} frames are invalid (frame "
                f"{first['frame']}: {first['reason']})"
            )
        raise DataError(f"data source '{spec}' contains no structures")
    if targets:
        unknown = [t for t in targets if t not in source.target_names]
        if unknown:
            raise DataError(
                f"unknown target(s) {unknown} in '{spec}'; available: {list(source.target_names)}"
            )
        columns = [source.target_names.index(t) for t in targets]
        source.targets = source.targets[:, columns]
        source.target_names = tuple(targets)
        source.fingerprint += ":" + ",".join(targets)
    return source


def _qm9_source(limit: int | None) -> Source:
    from atomlens.datasets.qm9 import QM9_TARGETS, load_qm9

    table = load_qm9(limit)
    return Source(
        name="qm9",
        structures=table.structures,
        targets=table.targets,
        target_names=table.target_names,
        ids=[f"qm9:{i}" for i in table.ids],
        fingerprint=f"qm9:{table.source_hash}",  # the files' content, whatever the limit
        units={name: unit for name, (_, _, unit) in QM9_TARGETS.items()},
    )


# Units of common labels of structure files (Materials Project conventions; ASE's eV for
# the energies ASE itself reads, e.g. an extxyz ``energy=``).
KNOWN_UNITS = {
    "energy": "eV",
    "free_energy": "eV",
    "formation_energy_per_atom": "eV/atom",
    "energy_per_atom": "eV/atom",
    "e_above_hull": "eV/atom",
    "band_gap": "eV",
    "e_fermi": "eV",
    "total_magnetization": "mu_B",
}


def _file_source(
    path: Path, limit: int | None, id_key: str | None, skip_invalid: bool = False
) -> Source:
    """The frames of one structure file with their numeric ``info`` labels."""
    index = ":" if limit is None else f":{limit}"
    invalid: list[StructureError] = []
    structures = list(
        read_structures(path, index=index, on_invalid=invalid.append if skip_invalid else None)
    )
    label_names = _numeric_info_keys(structures)
    targets = np.array(
        [[_as_float(s.info.get(k)) for k in label_names] for s in structures], dtype=np.float64
    ).reshape(len(structures), len(label_names))
    key = id_key or next(
        (k for k in ("material_id", "id", "name") if all(k in s.info for s in structures)), None
    )
    if id_key and not all(id_key in s.info for s in structures):
        missing = next(s.frame for s in structures if id_key not in s.info)
        raise StructureError(f"id key '{id_key}' missing", str(path), missing)
    ids = [str(s.info[key]) if key else f"{path.name}:{s.frame}" for s in structures]
    # The file's content, whatever the limit: record k is frame k's (or, with frames
    # skipped when reading, the k-th valid frame's) in every prefix of the file.
    fingerprint = f"file:{file_sha256(path)}"
    if invalid:  # the content differs from the whole file's: so must the cache key
        fingerprint += ":skipped=" + ",".join(str(e.frame) for e in invalid)
    return Source(
        name=path.stem,
        structures=structures,
        targets=targets,
        target_names=tuple(label_names),
        ids=ids,
        fingerprint=fingerprint,
        units={k: KNOWN_UNITS[k] for k in label_names if k in KNOWN_UNITS},
        invalid=[
            {
                "file": str(path),
                "frame": e.frame,
                "id": f"{path.name}:{e.frame}",
                "reason": e.reason,
            }
            for e in invalid
        ],
    )


def _numeric_info_keys(structures: list[Structure]) -> list[str]:
    """Info keys holding a real number in every frame where they appear, in first-seen order."""
    keys: dict[str, bool] = {}
    for s in structures:
        for k, v in s.info.items():
            numeric = isinstance(v, int | float | np.integer | np.floating) and not isinstance(
                v, bool
            )
            keys[k] = keys.get(k, True) and numeric
    return [k for k, ok in keys.items() if ok]


def _as_float(value: object) -> float:
    return float("nan") if value is None else float(value)  # type: ignore[arg-type]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's content (first 16 hex digits)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
