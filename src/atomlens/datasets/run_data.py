"""The data of a training run: its sources, its resolved split and the graphs it uses.

``data.source`` (or ``data.split.train_source``) is the *pool*: after ``data.limit``, the
parts without a file of their own are carved from its records, by sizes and seed or as
listed in ``data.split.file``. A part with its own file (``val_source``, ``test_source``)
takes that file's records (all of them, or those the split file lists). Graphs are built
for the records the split uses and nothing else; the run's data set holds the train, val
and test records one after the other (see :class:`RunData`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from atomlens.datasets.cache import build_graph_cache, make_params
from atomlens.datasets.dataset import GraphDataset
from atomlens.datasets.sources import Source, load_source
from atomlens.datasets.splits import PARTS, Split, random_split, read_split_file
from atomlens.errors import DataError
from atomlens.structures.record import Structure

if TYPE_CHECKING:
    from atomlens.config import DataConfig

log = logging.getLogger(__name__)

SPLIT_FILE = "split.json"


@dataclass
class RunData:
    """A run's graphs and split.

    Attributes:
        dataset: Graphs of the train, val and test records, in this order.
        split: Record indices of each part (what the run's ``split.json`` holds).
        rows: The same parts as rows of ``dataset`` (what training indexes with).
        entries: Cache entry of each part.
    """

    dataset: GraphDataset
    split: Split
    rows: Split
    entries: dict[str, Path]


def part_specs(data: DataConfig) -> dict[str, str]:
    """Where each part's records come from: its own file, else the pool."""
    split = data.split
    pool = split.train_source or data.source
    if pool is None:  # the config model refuses this; a guard for hand-made configs
        raise DataError("data.source is missing (or give data.split.train_source)")
    return {part: getattr(split, f"{part}_source") or pool for part in PARTS}


def load_sources(data: DataConfig) -> dict[str, Source]:
    """The source of each part (parts from the same spec share one Source object)."""
    specs = part_specs(data)
    loaded = {spec: _load(data, spec) for spec in dict.fromkeys(specs.values())}
    return {part: loaded[spec] for part, spec in specs.items()}


def load_part_source(data: DataConfig, part: str) -> Source:
    """The source the records of one part come from."""
    return _load(data, part_specs(data)[part])


def _load(data: DataConfig, spec: str) -> Source:
    """A source with the run's target; ``data.limit`` applies to the pool only."""
    return load_source(
        spec,
        targets=[data.target],
        limit=data.limit if spec == part_specs(data)["train"] else None,
        skip_invalid=data.skip_invalid,
    )


def resolve_split(data: DataConfig, sources: dict[str, Source]) -> Split:
    """The split the config asks for, in record indices (before any graph is built).

    With ``skip_invalid``, records with a non-finite label are never chosen.
    """
    specs = part_specs(data)
    s = data.split
    pool = sources["train"]
    own = {part: specs[part] != specs["train"] for part in PARTS}
    if s.file is not None:
        lists = read_split_file(s.file, sources, specs)
        for part in PARTS:  # a part of its own file that the split file leaves out: all of it
            if own[part] and not lists[part].size:
                lists[part] = _usable(sources[part], data.skip_invalid)
        return Split(**lists, seed=None, n_total=len(pool), sources=specs)
    candidates = _usable(pool, data.skip_invalid)
    carved = random_split(
        candidates.size,
        train=s.train,
        val=0 if own["val"] else s.val,
        test=0 if own["test"] else s.test,
        seed=s.seed,
    )
    parts = {
        part: _usable(sources[part], data.skip_invalid)
        if own[part]
        else candidates[carved.part(part)]
        for part in PARTS
    }
    return Split(**parts, seed=s.seed, n_total=len(pool), sources=specs)


def _usable(source: Source, skip_invalid: bool) -> np.ndarray:
    """Records of a source a split may choose (with ``skip_invalid``: finite labels only)."""
    records = np.arange(len(source), dtype=np.int64)
    if skip_invalid:
        records = records[np.isfinite(source.targets).all(axis=1)]
    return records


def prepare_run_data(
    data: DataConfig,
    graph: tuple[str, dict[str, Any]],
    *,
    saved_split: Path | None = None,
    progress: bool = True,
) -> RunData:
    """Sources, split and graphs of a run; builds the graphs of the split's records only.

    Args:
        data: The run's data config.
        graph: Graph kind and parameters the model needs.
        saved_split: A ``split.json`` already in the run directory (from a run being
            resumed, or placed there): it must equal the resolved split.
        progress: Show the graph-building progress bar.

    Raises:
        DataError: For an empty train or val part, or a ``saved_split`` that differs.
    """
    sources = load_sources(data)
    split = resolve_split(data, sources)
    _check_parts(split)
    saved = saved_split if saved_split is not None and saved_split.is_file() else None
    if saved is not None and not data.skip_invalid:  # known before any graph is built
        _check_saved(saved, split)
    kind, graph_params = graph
    params = make_params(kind, **graph_params)
    entries: dict[str, Path] = {}
    by_source: dict[int, list[str]] = {}
    for part in PARTS:
        by_source.setdefault(id(sources[part]), []).append(part)
    for parts in by_source.values():
        source = sources[parts[0]]
        records = np.concatenate([split.part(p) for p in parts])
        entry = build_graph_cache(
            source,
            kind,
            params,
            records=records,
            cache_dir=data.cache_dir,
            skip_invalid=data.skip_invalid,
            progress=progress,
        )
        entries.update(dict.fromkeys(parts, entry))
    if data.skip_invalid:  # records without a graph leave the split
        split = _without_skipped(split, entries)
        _check_parts(split)
        if saved is not None:
            _check_saved(saved, split)
    return _assemble(split, entries)


def _check_parts(split: Split) -> None:
    """Training needs train and val records."""
    for part in ("train", "val"):
        if not split.part(part).size:
            raise DataError(
                f"the {part} split is empty; set data.split.{part} > 0 (or list {part} "
                "records in data.split.file)"
            )


def _without_skipped(split: Split, entries: dict[str, Path]) -> Split:
    """The split without the records whose graphs were skipped (``skip_invalid``)."""
    from atomlens.datasets.cache import read_manifest

    parts = {}
    for part in PARTS:
        manifest = read_manifest(entries[part])
        skipped = [e["record"] for e in manifest["skipped"] if e.get("record") is not None]
        records = split.part(part)
        kept = records[~np.isin(records, skipped)]
        if kept.size < records.size:
            log.warning(
                "%d %s record(s) have no graph (skipped, see %s)",
                records.size - kept.size,
                part,
                entries[part] / "manifest.json",
            )
        parts[part] = kept
    return Split(**parts, seed=split.seed, n_total=split.n_total, sources=split.sources)


def _check_saved(path: Path, split: Split) -> None:
    """A split.json already in the run directory must be the resolved split."""
    saved = Split.load(path)
    if saved.same_records(split):
        return
    differ = next(p for p in PARTS if not np.array_equal(saved.part(p), split.part(p)))
    raise DataError(
        f"'{path}' holds another split than data.split resolves to ({differ} differs: "
        f"{saved.part(differ).size} vs {split.part(differ).size} records); to train on it, "
        "set data.split.file to a copy of it, else remove it or choose another run_dir"
    )


def _assemble(split: Split, entries: dict[str, Path]) -> RunData:
    """The run's data set (train, val, test records one after the other) and its rows."""
    views = [GraphDataset(entries[part], records=split.part(part)) for part in PARTS]
    sizes = np.cumsum([0, *(len(v) for v in views)])
    rows = Split(
        *(np.arange(sizes[k], sizes[k + 1], dtype=np.int64) for k in range(len(PARTS))),
        seed=split.seed,
        n_total=int(sizes[-1]),
    )
    return RunData(GraphDataset.join(views), split, rows, entries)


def open_run_data(run_dir: Path | str, metadata: dict[str, Any]) -> RunData:
    """The data of a trained run, from its ``split.json`` and cache entries (no sources read).

    Runs of older versions (one ``cache_entry``, split rows of it) open as they were.

    Raises:
        DataError: If the split file or a cache entry is gone.
    """
    run_dir = Path(run_dir)
    split = Split.load(run_dir / SPLIT_FILE)
    entries = {
        part: Path(path)
        for part, path in metadata.get(
            "cache_entries", dict.fromkeys(PARTS, metadata["cache_entry"])
        ).items()
    }
    for entry in dict.fromkeys(entries.values()):
        if not (entry / "manifest.json").is_file():
            raise DataError(
                f"the run's graph cache '{entry}' is gone; rebuild it with "
                f"`atomlens train {run_dir / 'config.yaml'}` (it resumes)"
            )
    if "cache_entries" not in metadata:  # older runs: the split holds rows of one entry
        return RunData(GraphDataset(entries["train"]), split, split, entries)
    return _assemble(split, entries)


def structures_of_rows(
    data: DataConfig, run: RunData, rows: np.ndarray, what: str = "the selection"
) -> tuple[list[Structure], np.ndarray]:
    """Source structures and labels of rows of a run's data set, found again by record id.

    Each row is looked up in the source of its part (loaded here), so a source that
    changed since training is noticed.

    Raises:
        DataError: If a record is no longer in its source.
    """
    rows = np.asarray(rows, dtype=np.int64)
    ids = [str(i) for i in run.dataset.ids[rows]]
    structures: list[Structure | None] = [None] * rows.size
    labels = np.empty(rows.size)
    for part in PARTS:
        inside = np.nonzero(np.isin(rows, run.rows.part(part)))[0]
        if not inside.size:
            continue
        source = load_part_source(data, part)
        position = {str(record_id): k for k, record_id in enumerate(source.ids)}
        missing = [ids[k] for k in inside if ids[k] not in position]
        if missing:
            raise DataError(
                f"{len(missing)} record(s) of {what} (e.g. {missing[0]}) are no longer in the "
                f"source '{part_specs(data)[part]}'"
            )
        for k in inside:
            structures[k] = source.structures[position[ids[k]]]
            labels[k] = source.targets[position[ids[k]], 0]
    unplaced = [k for k, s in enumerate(structures) if s is None]
    if unplaced:
        raise DataError(f"row {int(rows[unplaced[0]])} of {what} is in no part of the run's split")
    return [s for s in structures if s is not None], labels
