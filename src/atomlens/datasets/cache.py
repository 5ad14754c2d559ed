"""Graph cache on disk: graphs computed once, in parallel, resumably, written atomically.

Layout of one cache entry (``<cache_dir>/<name>-<key>/``): ``manifest.json`` (parameters,
versions, source fingerprint, counts, skipped records) and one ``.npy`` file per array, all
graphs concatenated (atoms and edges indexed by ``atom_ptr``/``edge_ptr``). The key hashes
the source fingerprint, the graph kind and parameters, the cache format and the versions of
the libraries that compute graphs, so any change builds a new entry.

While building, finished chunks are kept in ``.building-<name>-<key>/``; a killed build
resumes from them. The entry appears under its final name only when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import platform
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from atomlens.datasets.sources import Source
from atomlens.errors import DataError, StructureError, describe_location
from atomlens.files import atomic_path, check_output_dir, dumps_json
from atomlens.graphs.cutoff import CutoffParams, cutoff_graph
from atomlens.graphs.graph import Graph
from atomlens.graphs.schema import FIELDS, GROUPS
from atomlens.graphs.voronoi import VoronoiParams, voronoi_graphs
from atomlens.locks import exclusive
from atomlens.paths import resolve_cache_dir
from atomlens.structures.record import Structure

FORMAT_VERSION = 1
GRAPH_KINDS: dict[str, type] = {"voronoi": VoronoiParams, "cutoff": CutoffParams}


def make_params(kind: str, **overrides: Any) -> VoronoiParams | CutoffParams:
    """Graph parameters of the given kind with overrides (unknown names are an error)."""
    if kind not in GRAPH_KINDS:
        raise DataError(f"unknown graph kind '{kind}'; choose from {sorted(GRAPH_KINDS)}")
    cls = GRAPH_KINDS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - names
    if unknown:
        raise DataError(f"unknown {kind} parameter(s) {sorted(unknown)}; known: {sorted(names)}")
    return cls(**overrides)


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour determines the graphs."""
    from importlib.metadata import version

    import atomlens

    versions = {name: version(name) for name in ("numpy", "scipy", "ase", "vesin")}
    versions["atomlens"] = atomlens.__version__
    versions["python"] = platform.python_version()
    return versions


def cache_key(source: Source, kind: str, params: VoronoiParams | CutoffParams) -> str:
    """Hash of everything that determines the cached arrays."""
    versions = library_versions()
    versions.pop("python")
    payload = {
        "format": FORMAT_VERSION,
        "source": source.fingerprint,
        "targets": list(source.target_names),
        "kind": kind,
        "params": dataclasses.asdict(params),
        "versions": versions,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def build_graph_cache(
    source: Source,
    kind: str = "voronoi",
    params: VoronoiParams | CutoffParams | None = None,
    *,
    cache_dir: Path | str | None = None,
    workers: int | None = None,
    chunk_size: int = 1000,
    skip_invalid: bool = False,
    progress: bool = True,
) -> Path:
    """Compute the graphs of a source once and cache them on disk.

    Args:
        source: Structures and labels.
        kind: ``voronoi`` (SCANN) or ``cutoff``.
        params: Graph parameters (defaults of the kind when None).
        cache_dir: Folder holding cache entries (default: see :mod:`atomlens.paths`).
        workers: Processes to use (default: all cores, at most 2 per the target machine).
        chunk_size: Structures per resumable chunk.
        skip_invalid: Skip (and list in the manifest) invalid structures and records with
            NaN labels instead of raising an error.
        progress: Show a progress bar (only on a terminal).

    Returns:
        The folder of the complete cache entry (reused if it already exists).

    Raises:
        DataError: For NaN labels (unless skipped) or an empty result.
        StructureError: For the first invalid structure (unless skipped).
    """
    params = params or make_params(kind)
    if chunk_size < 1:
        raise DataError(f"chunk_size must be >= 1, got {chunk_size}")
    cache_dir = resolve_cache_dir(cache_dir)
    key = cache_key(source, kind, params)
    final = cache_dir / f"{source.name}-{key}"
    if (final / "manifest.json").is_file():
        return final
    label_skips = _check_labels(source, skip_invalid)
    check_output_dir(
        cache_dir, "graph cache folder (--cache-dir, data.cache_dir or $ATOMLENS_CACHE)"
    )
    # A second build of the same entry waits for the first and then reuses its result.
    with exclusive(cache_dir / f".{source.name}-{key}.lock", f"graph cache '{final}'", wait=True):
        if (final / "manifest.json").is_file():
            return final
        _build_locked(
            source,
            kind,
            params,
            key,
            cache_dir,
            final,
            chunk_size,
            workers,
            skip_invalid,
            label_skips,
            progress,
        )
    return final


def _build_locked(
    source: Source,
    kind: str,
    params: VoronoiParams | CutoffParams,
    key: str,
    cache_dir: Path,
    final: Path,
    chunk_size: int,
    workers: int | None,
    skip_invalid: bool,
    label_skips: frozenset[int],
    progress: bool,
) -> None:
    """Build the entry while holding its lock (see :func:`build_graph_cache`)."""
    started = time.perf_counter()
    building = cache_dir / f".building-{source.name}-{key}"
    building.mkdir(parents=True, exist_ok=True)
    chunks = [
        (c, range(start, min(start + chunk_size, len(source))))
        for c, start in enumerate(range(0, len(source), chunk_size))
    ]
    _drop_foreign_chunks(building, {_chunk_name(r) for _, r in chunks})
    todo = [(c, r) for c, r in chunks if not (building / _chunk_name(r)).is_file()]
    done_count = len(source) - sum(len(r) for _, r in todo)
    tasks = (
        (c, [source.structures[i] for i in r], r.start, kind, params, skip_invalid, label_skips)
        for c, r in todo
    )
    from tqdm.auto import tqdm

    with tqdm(
        total=len(source),
        initial=done_count,
        unit="struct",
        desc=f"graphs {source.name}",
        disable=None if progress else True,
        smoothing=0.1,
    ) as bar:
        for chunk_id, arrays, count in _run_tasks(tasks, _resolve_workers(workers, len(todo))):
            _save_atomic_npz(building / _chunk_name(chunks[chunk_id][1]), arrays)
            bar.update(count)

    _assemble(source, kind, params, key, building, final, [r for _, r in chunks], started)
    shutil.rmtree(building, ignore_errors=True)


def _check_labels(source: Source, skip_invalid: bool) -> frozenset[int]:
    bad_rows = np.nonzero(~np.isfinite(source.targets).all(axis=1))[0]
    if bad_rows.size and not skip_invalid:
        row = int(bad_rows[0])
        column = int(np.nonzero(~np.isfinite(source.targets[row]))[0][0])
        structure = source.structures[row]
        raise DataError(
            f"{describe_location(structure.source, structure.frame)} "
            f"(id {source.ids[row]}): label '{source.target_names[column]}' is "
            f"{source.targets[row, column]} ({bad_rows.size} records have non-finite labels); "
            "choose other targets or pass skip_invalid / --skip-invalid"
        )
    return frozenset(int(r) for r in bad_rows)


def _resolve_workers(workers: int | None, n_tasks: int) -> int:
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    wanted = available if workers is None else workers
    if wanted < 1:
        raise DataError(f"workers must be >= 1, got {wanted}")
    return max(1, min(wanted, n_tasks))


def _run_tasks(
    tasks: Iterator[tuple], workers: int, function: Callable[[Any], Any] | None = None
) -> Iterator[Any]:
    """``function`` (default: :func:`_build_chunk`) over ``tasks``, in ``workers`` processes.

    The workers ignore SIGINT and exit with their parent: Ctrl-C interrupts the parent only,
    which terminates the pool (no worker tracebacks, no BrokenPipe noise), and a parent that
    is killed outright takes its workers with it (each watches its parent's sentinel).
    """
    function = function or _build_chunk
    if workers == 1:
        yield from map(function, tasks)
        return
    # forkserver/spawn, never plain fork: forking a process whose torch (OpenMP) thread
    # pool is running leaves workers dead-locked (seen after training in one process).
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    pool = context.Pool(workers, initializer=_init_worker)
    try:
        yield from pool.imap_unordered(function, tasks)
    except BaseException:  # Ctrl-C, an error, or the consumer stopped (GeneratorExit)
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()


def _init_worker() -> None:
    """Pool worker set-up: leave SIGINT to the parent and exit quietly when it is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: Any) -> None:
    """Wait for the parent's sentinel (ready when it exits, even as a zombie); then exit."""
    parent.join()
    os._exit(0)  # no cleanup and no output: the parent's results are gone anyway


def _build_chunk(task: tuple) -> tuple[int, dict[str, np.ndarray], int]:
    chunk_id, structures, first_index, kind, params, skip_invalid, label_skips = task
    indices = [first_index + k for k in range(len(structures))]
    candidates = [(i, s) for i, s in zip(indices, structures, strict=True) if i not in label_skips]
    skipped: list[tuple[int, str]] = [(i, "non-finite label") for i in indices if i in label_skips]
    results = graphs_of([s for _, s in candidates], kind, params)
    graphs: list[Graph] = []
    kept: list[int] = []
    for (index, _), result in zip(candidates, results, strict=True):
        if isinstance(result, StructureError):
            if not skip_invalid:
                raise result
            skipped.append((index, result.reason))
            continue
        graphs.append(result)
        kept.append(index)
    groups = {group for group in GROUPS if getattr(params, group, False)}
    arrays = _concatenate(graphs, kept, groups)
    skipped.sort()
    arrays["record_range"] = np.array([first_index, first_index + len(structures)], np.int64)
    arrays["skipped_index"] = np.array([s[0] for s in skipped], dtype=np.int64)
    arrays["skipped_reason"] = np.array([s[1] for s in skipped], dtype=str)
    return chunk_id, arrays, len(structures)


def graphs_of(
    structures: list[Structure], kind: str, params: VoronoiParams | CutoffParams
) -> list[Graph | StructureError]:
    """Graphs of many structures; a structure that has none gets its StructureError."""
    if kind == "voronoi":
        return voronoi_graphs(structures, params)
    results: list[Graph | StructureError] = []
    for structure in structures:
        try:
            results.append(cutoff_graph(structure, params))
        except StructureError as exc:
            results.append(exc)
    return results


def _concatenate(graphs: list[Graph], kept: list[int], groups: set[str]) -> dict[str, np.ndarray]:
    """The schema fields of ``graphs`` as cache arrays (graph-level fields stacked).

    Node and edge fields are concatenated with edge indices left local to each graph; the
    fields of an optional group are written when the graph parameters ask for the group.
    """
    arrays = {}
    for spec in FIELDS:
        if spec.group is not None and spec.group not in groups:
            continue
        parts = [np.asarray(getattr(g, spec.name)) for g in graphs]
        if not parts:
            arrays[spec.name] = spec.empty()
        elif spec.level == "graph":
            arrays[spec.name] = np.stack(parts).astype(spec.stored)
        else:
            arrays[spec.name] = np.concatenate(parts).astype(spec.stored)
    arrays["record_index"] = np.array(kept, dtype=np.int64)
    arrays["atom_count"] = np.array([g.num_atoms for g in graphs], dtype=np.int64)
    arrays["edge_count"] = np.array([g.num_edges for g in graphs], dtype=np.int64)
    return arrays


def _chunk_name(records: range) -> str:
    """File of the chunk holding ``records``: its name is its record range."""
    return f"chunk-{records.start:09d}-{records.stop:09d}.npz"


def _drop_foreign_chunks(building: Path, expected: set[str]) -> None:
    """Delete finished chunks of an earlier build whose record ranges this build does not use.

    A build resumed with another chunk size must not reuse chunks by number: their records
    would overlap this build's (duplicated graphs, molecules in two splits).
    """
    for path in building.glob("chunk-*.npz"):
        if path.name not in expected:
            path.unlink()


def _save_atomic_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())


def _assemble(
    source: Source,
    kind: str,
    params: VoronoiParams | CutoffParams,
    key: str,
    building: Path,
    final: Path,
    chunks: list[range],
    started: float,
) -> None:
    parts: dict[str, list[np.ndarray]] = {}
    for records in chunks:
        path = building / _chunk_name(records)
        with np.load(path) as chunk:
            stored = chunk["record_range"].tolist() if "record_range" in chunk.files else None
            if stored != [records.start, records.stop]:
                path.unlink()
                raise DataError(
                    f"graph chunk '{path}' holds records {stored}, expected "
                    f"{[records.start, records.stop]}; it was removed, run the build again"
                )
            for name in chunk.files:
                if name != "record_range":
                    parts.setdefault(name, []).append(chunk[name])
    merged = {name: np.concatenate(arrays) for name, arrays in parts.items()}
    skipped = _skipped_list(source, merged.pop("skipped_index"), merged.pop("skipped_reason"))
    if merged["record_index"].size == 0:
        raise DataError(f"no valid structure left in '{source.name}' ({len(skipped)} skipped)")
    atom_count = merged.pop("atom_count")
    edge_count = merged.pop("edge_count")
    merged["atom_ptr"] = np.concatenate([[0], np.cumsum(atom_count)]).astype(np.int64)
    merged["edge_ptr"] = np.concatenate([[0], np.cumsum(edge_count)]).astype(np.int64)
    merged["targets"] = source.targets[merged["record_index"]]
    merged["ids"] = np.array([source.ids[i] for i in merged["record_index"]], dtype=str)

    manifest = {
        "format_version": FORMAT_VERSION,
        "key": key,
        "versions": library_versions(),
        "source": {
            "name": source.name,
            "fingerprint": source.fingerprint,
            "n_records": len(source),
        },
        "graph": {"kind": kind, "params": dataclasses.asdict(params)},
        "targets": list(source.target_names),
        "units": {t: source.units.get(t, "") for t in source.target_names},
        "n_graphs": int(merged["record_index"].size),
        "n_atoms": int(merged["atom_ptr"][-1]),
        "n_edges": int(merged["edge_ptr"][-1]),
        "skipped": skipped,
        "build_seconds": round(time.perf_counter() - started, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "arrays": sorted(merged),
    }
    staging = building / "entry"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name, array in merged.items():
        np.save(staging / f"{name}.npy", array, allow_pickle=False)
    (staging / "manifest.json").write_text(dumps_json(manifest))
    if final.exists():  # a concurrent build finished first; keep its identical result
        return
    os.replace(staging, final)


def _skipped_list(source: Source, indices: np.ndarray, reasons: np.ndarray) -> list[dict[str, Any]]:
    """The manifest's ``skipped`` entries in file order.

    Frames rejected when the source was loaded come with ``record`` None; records whose
    label or graph failed carry their record index. All name ``file`` and ``frame`` (the
    file's own numbering, where known), ``id`` and ``reason``.
    """
    entries = [{"record": None} | item for item in source.invalid]
    for index, reason in zip(indices.tolist(), reasons.tolist(), strict=True):
        structure = source.structures[index]
        entries.append(
            {
                "record": int(index),
                "file": structure.source,
                "frame": structure.frame,
                "id": source.ids[index],
                "reason": str(reason),
            }
        )
    entries.sort(key=lambda e: (str(e["file"]), -1 if e["frame"] is None else e["frame"]))
    return entries


def read_manifest(path: Path | str) -> dict[str, Any]:
    """Read and check the manifest of a cache entry."""
    manifest_path = Path(path) / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(f"'{path}' is not a graph cache entry (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"'{manifest_path}' is corrupt: {exc}") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"'{path}' has cache format {manifest.get('format_version')}, expected "
            f"{FORMAT_VERSION}; rebuild it"
        )
    return manifest
