"""Train/validation/test splits of source records: random, from a file, saved with the run.

A split holds *record indices*: positions in the source a part comes from (``data.source``
after ``data.limit``, or the part's own file), the same in every run that reads the same
source. Which graph rows of a cache entry hold them is the data set's business
(:class:`atomlens.datasets.dataset.GraphDataset`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atomlens.datasets.sources import Source
from atomlens.errors import DataError
from atomlens.files import write_json_atomic
from atomlens.structures.record import ID_KEYS

PARTS = ("train", "val", "test")
# Keys a split file may hold besides the parts (written by Split.save, so a run's
# split.json can be given as ``data.split.file`` of another run).
_INFO_KEYS = ("seed", "n_total", "sources")


@dataclass(frozen=True)
class Split:
    """Record indices of the parts and how they were made.

    Attributes:
        train: Records to train on.
        val: Records for validation (early stopping, best checkpoint).
        test: Records held out for ``atomlens evaluate``.
        seed: Seed of a random split (None when the records were listed).
        n_total: Number of records of the data source the split was drawn from.
        sources: Where each part's records come from (source spec), when known.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int | None
    n_total: int
    sources: dict[str, str] = field(default_factory=dict)

    def part(self, name: str) -> np.ndarray:
        """The records of part ``name`` (``train``, ``val`` or ``test``)."""
        if name not in PARTS:
            raise DataError(f"unknown split {name!r}; use train, val or test")
        return getattr(self, name)

    def same_records(self, other: Split) -> bool:
        """True when both splits put the same records in each part."""
        return all(np.array_equal(self.part(p), other.part(p)) for p in PARTS)

    def save(self, path: Path | str) -> None:
        """Write the split as JSON, atomically."""
        payload: dict[str, Any] = {"seed": self.seed, "n_total": self.n_total}
        if self.sources:
            payload["sources"] = dict(self.sources)
        payload |= {name: self.part(name).tolist() for name in PARTS}
        write_json_atomic(Path(path), payload, indent=None)

    @classmethod
    def load(cls, path: Path | str) -> Split:
        """Read a split written by ``save``."""
        try:
            payload = json.loads(Path(path).read_text())
            seed = payload["seed"]
            return cls(
                **{k: np.asarray(payload[k], dtype=np.int64) for k in PARTS},
                seed=None if seed is None else int(seed),
                n_total=int(payload["n_total"]),
                sources={str(k): str(v) for k, v in payload.get("sources", {}).items()},
            )
        except (OSError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise DataError(f"cannot read split file '{path}': {exc}") from None


def read_split_file(
    path: Path | str, sources: Mapping[str, Source], specs: Mapping[str, str]
) -> dict[str, np.ndarray]:
    """The record lists of a split file, checked against the sources of the parts.

    The file is a JSON object with ``train``, ``val`` and ``test`` lists (a missing part is
    empty) of record ids (strings: the source's record ids or a value of one of the
    structures' ``info`` id keys, see ``ID_KEYS``) or record indices (integers, counted
    from 0 in the part's source). A run's ``split.json`` is such a file.

    Args:
        path: The split file.
        sources: The source of each part.
        specs: How the config names each part's source (for messages and the check of a
            ``sources`` entry in the file).

    Returns:
        Part name -> record indices, in the file's order.

    Raises:
        DataError: One line naming the file and the offending entry: not JSON, unknown
            keys, an entry that is neither an id nor an index, an index out of range, an
            unknown id, a record listed twice or in two parts of the same source, or a
            part the file says comes from another source.
    """
    where = f"split file '{path}'"
    try:
        payload = json.loads(Path(path).read_text())
    except OSError as exc:
        raise DataError(f"cannot read {where}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise DataError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise DataError(f"{where} must hold a JSON object with train, val and test lists")
    unknown = sorted(set(payload) - set(PARTS) - set(_INFO_KEYS))
    if unknown:
        raise DataError(f"{where}: unknown key '{unknown[0]}' (expected train, val and test)")
    _check_file_sources(where, payload.get("sources"), specs)
    lists: dict[str, np.ndarray] = {}
    owner: dict[tuple[int, int], str] = {}  # (source, record) -> part
    for part in PARTS:
        entries = payload.get(part, [])
        if not isinstance(entries, list):
            raise DataError(f"{where}: '{part}' must be a list of record ids or indices")
        source = sources[part]
        lookup = _IdLookup(source)
        records = np.array(
            [_record(where, part, entry, source, specs[part], lookup) for entry in entries],
            dtype=np.int64,
        )
        for entry, record in zip(entries, records.tolist(), strict=True):
            key = (id(source), record)
            if key in owner:
                other = owner[key]
                place = "twice" if other == part else f"in both {other} and {part}"
                raise DataError(
                    f"{where}: {part} entry {json.dumps(entry)} (record {record}, id "
                    f"'{source.ids[record]}') is listed {place}"
                )
            owner[key] = part
        lists[part] = records
    return lists


def _check_file_sources(where: str, listed: Any, specs: Mapping[str, str]) -> None:
    """A split file that names its parts' sources must name the config's (by file name)."""
    if listed is None:
        return
    if not isinstance(listed, dict):
        raise DataError(f"{where}: 'sources' must map part names to sources")
    for part, spec in listed.items():
        if part not in PARTS:
            raise DataError(f"{where}: unknown part '{part}' in 'sources'")
        if Path(str(spec)).name != Path(specs[part]).name:
            raise DataError(
                f"{where}: its {part} records are records of '{spec}', but the config takes "
                f"{part} from '{specs[part]}'"
            )


class _IdLookup:
    """Record index of an id string: the source's record ids, then ``info`` id values."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._maps: list[dict[str, int | None]] | None = None

    def __call__(self, text: str) -> int | None:
        """The record of ``text``; None when unknown; -1 when it names several records."""
        if self._maps is None:
            self._maps = [_index(self._source.ids)]
            for key in ID_KEYS:
                values = [s.info.get(key) for s in self._source.structures]
                if any(v is not None for v in values):
                    self._maps.append(_index(["" if v is None else str(v) for v in values]))
        for mapping in self._maps:
            if text in mapping:
                found = mapping[text]
                return -1 if found is None else found
        return None


def _index(ids: list[str]) -> dict[str, int | None]:
    """Id -> record (None for an id that several records share)."""
    mapping: dict[str, int | None] = {}
    for record, text in enumerate(ids):
        mapping[text] = None if text in mapping else record
    mapping.pop("", None)
    return mapping


def _record(where: str, part: str, entry: Any, source: Source, spec: str, lookup: _IdLookup) -> int:
    """The record index an entry of a split file names."""
    n = len(source)
    if isinstance(entry, bool) or not isinstance(entry, int | str):
        raise DataError(
            f"{where}: {part} entry {json.dumps(entry)} is neither a record id (string) nor "
            "a record index (integer)"
        )
    if isinstance(entry, int):
        if not 0 <= entry < n:
            raise DataError(
                f"{where}: {part} entry {entry} is out of range: '{spec}' has {n} records "
                f"(indices 0 to {n - 1})"
            )
        return entry
    record = lookup(entry)
    if record is None:
        raise DataError(f"{where}: {part} entry '{entry}' is not the id of a record of '{spec}'")
    if record < 0:
        raise DataError(f"{where}: {part} entry '{entry}' names several records of '{spec}'")
    return record


def random_split(
    n_total: int,
    *,
    val: float | int = 0.1,
    test: float | int = 0.1,
    train: float | int | None = None,
    seed: int = 0,
) -> Split:
    """Shuffle ``range(n_total)`` with ``seed`` and cut it into train/val/test.

    Sizes may be fractions (of ``n_total``) or counts; ``train`` defaults to the rest.
    """

    def count(size: float | int) -> int:
        value = round(size * n_total) if isinstance(size, float) else int(size)
        if value < 0:
            raise DataError(f"split sizes must be >= 0, got {size}")
        return value

    n_val, n_test = count(val), count(test)
    n_train = n_total - n_val - n_test if train is None else count(train)
    if n_train <= 0 or n_train + n_val + n_test > n_total:
        raise DataError(
            f"cannot split {n_total} records into train={n_train}, val={n_val}, test={n_test}"
        )
    order = np.random.default_rng(seed).permutation(n_total)
    return Split(
        train=np.sort(order[:n_train]),
        val=np.sort(order[n_train : n_train + n_val]),
        test=np.sort(order[n_train + n_val : n_train + n_val + n_test]),
        seed=seed,
        n_total=n_total,
    )


def target_statistics(targets: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each target over the training split only."""
    if train.size == 0:
        raise DataError("the training split is empty")
    values = np.asarray(targets[train], dtype=np.float64)
    std = values.std(axis=0)
    return values.mean(axis=0), np.where(std > 0, std, 1.0)
