"""Graph cache on disk: graphs computed once, only for the records asked for, resumably.

A cache entry (``<cache_dir>/<name>-<key>/``) belongs to one source content, label set,
graph kind and parameters, cache format and set of library versions (the key hashes them
all), whatever part of the source a run uses. It is an append-only store:
``manifest.json`` lists its shards, and each shard (``shard-NNNNN/``) holds the graphs of
some records as one ``.npy`` file per array (graphs concatenated, atoms and edges indexed
by ``atom_ptr``/``edge_ptr``, ``record_index`` naming each graph's source record). A build
computes only the records asked for that no shard holds (nor the manifest lists as
skipped) and appends them as one new shard; :class:`atomlens.datasets.dataset.GraphDataset`
maps the records a run uses onto shard rows. Shards never change and the manifest is
replaced atomically once its new shard is in place, so readers only see complete shards.

While building, finished chunks are kept in ``.building-<name>-<key>/``; a killed build
resumes from them. One process at a time appends to an entry (a lock file beside it).
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
from atomlens.files import atomic_path, check_output_dir, write_json_atomic
from atomlens.graphs.cutoff import CutoffParams, cutoff_graph
from atomlens.graphs.graph import Graph
from atomlens.graphs.schema import FIELDS, GROUPS
from atomlens.graphs.voronoi import VoronoiParams, voronoi_graphs
from atomlens.locks import exclusive
from atomlens.paths import resolve_cache_dir
from atomlens.structures.record import Structure

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)  # format 1: one shard, at the top of the entry folder
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
    records: np.ndarray | list[int] | None = None,
    cache_dir: Path | str | None = None,
    workers: int | None = None,
    chunk_size: int = 1000,
    skip_invalid: bool = False,
    progress: bool = True,
) -> Path:
    """Compute the graphs of a source's records once and cache them on disk.

    Args:
        source: Structures and labels.
        kind: ``voronoi`` (SCANN) or ``cutoff``.
        params: Graph parameters (defaults of the kind when None).
        records: Records (positions in ``source``) that need graphs (default: all). Only
            those the entry does not hold yet are computed.
        cache_dir: Folder holding cache entries (default: see :mod:`atomlens.paths`).
        workers: Processes to use (default: all cores, at most 2 per the target machine).
        chunk_size: Structures per resumable chunk.
        skip_invalid: Skip (and list in the manifest) invalid structures and records with
            NaN labels instead of raising an error.
        progress: Show a progress bar (only on a terminal).

    Returns:
        The folder of the cache entry; ``GraphDataset(path, records=...)`` reads the
        records back.

    Raises:
        DataError: For NaN labels (unless skipped), records out of range, or an entry
            without any graph.
        StructureError: For the first invalid structure (unless skipped), also one that an
            earlier build with ``skip_invalid`` listed as skipped.
    """
    params = params or make_params(kind)
    if chunk_size < 1:
        raise DataError(f"chunk_size must be >= 1, got {chunk_size}")
    wanted = _requested(source, records)
    cache_dir = resolve_cache_dir(cache_dir)
    key = cache_key(source, kind, params)
    final = cache_dir / f"{source.name}-{key}"
    label_skips = _check_labels(source, wanted, skip_invalid)
    if not _missing(final, wanted, skip_invalid).size:
        return final
    check_output_dir(
        cache_dir, "graph cache folder (--cache-dir, data.cache_dir or $ATOMLENS_CACHE)"
    )
    # A second build of the same entry waits for the first and then reuses its result.
    with exclusive(cache_dir / f".{source.name}-{key}.lock", f"graph cache '{final}'", wait=True):
        missing = _missing(final, wanted, skip_invalid)
        if missing.size:
            _build_locked(
                source,
                kind,
                params,
                key,
                cache_dir,
                final,
                missing,
                chunk_size,
                workers,
                skip_invalid,
                label_skips,
                progress,
            )
            _missing(final, wanted, skip_invalid)  # resumed chunks may hold skipped records
    return final


def _requested(source: Source, records: np.ndarray | list[int] | None) -> np.ndarray:
    """The distinct records asked for, sorted (all of the source when None)."""
    if records is None:
        return np.arange(len(source), dtype=np.int64)
    wanted = np.unique(np.asarray(records, dtype=np.int64))
    if wanted.size and (wanted[0] < 0 or wanted[-1] >= len(source)):
        bad = int(wanted[0] if wanted[0] < 0 else wanted[-1])
        raise DataError(f"record {bad} is out of range: '{source.name}' has {len(source)} records")
    return wanted


def built_records(path: Path, manifest: dict[str, Any]) -> np.ndarray:
    """Records the entry holds graphs for, shard after shard."""
    parts = [
        np.load(folder / "record_index.npy", mmap_mode="r", allow_pickle=False)
        for folder in shard_folders(path, manifest)
    ]
    return np.concatenate([np.asarray(p, dtype=np.int64) for p in parts] or [np.empty(0, int)])


def _missing(final: Path, wanted: np.ndarray, skip_invalid: bool) -> np.ndarray:
    """Records of ``wanted`` the entry neither holds nor lists as skipped.

    Raises:
        StructureError: For a wanted record an earlier build skipped, unless ``skip_invalid``.
    """
    if not (final / "manifest.json").is_file():
        return wanted
    manifest = read_manifest(final)
    skipped = {e["record"]: e for e in manifest["skipped"] if e.get("record") is not None}
    if not skip_invalid and skipped:
        hit = np.intersect1d(wanted, np.fromiter(skipped, dtype=np.int64))
        if hit.size:
            entry = skipped[int(hit[0])]
            raise StructureError(entry["reason"], entry.get("file"), entry.get("frame"))
    covered = np.concatenate([built_records(final, manifest), np.fromiter(skipped, dtype=np.int64)])
    return np.setdiff1d(wanted, covered, assume_unique=False)


def _build_locked(
    source: Source,
    kind: str,
    params: VoronoiParams | CutoffParams,
    key: str,
    cache_dir: Path,
    final: Path,
    missing: np.ndarray,
    chunk_size: int,
    workers: int | None,
    skip_invalid: bool,
    label_skips: frozenset[int],
    progress: bool,
) -> None:
    """Build the missing records and append them while holding the entry's lock."""
    started = time.perf_counter()
    building = cache_dir / f".building-{source.name}-{key}"
    building.mkdir(parents=True, exist_ok=True)
    chunks = [missing[start : start + chunk_size] for start in range(0, missing.size, chunk_size)]
    names = [_chunk_name(records) for records in chunks]
    _drop_foreign_chunks(building, set(names))
    todo = [c for c, name in enumerate(names) if not (building / name).is_file()]
    done_count = int(missing.size - sum(chunks[c].size for c in todo))
    tasks = (
        (
            c,
            [source.structures[i] for i in chunks[c]],
            chunks[c].tolist(),
            kind,
            params,
            skip_invalid,
            label_skips,
        )
        for c in todo
    )
    from tqdm.auto import tqdm

    with tqdm(
        total=int(missing.size),
        initial=done_count,
        unit="struct",
        desc=f"graphs {source.name}",
        disable=None if progress else True,
        smoothing=0.1,
    ) as bar:
        for chunk_id, arrays, count in _run_tasks(tasks, _resolve_workers(workers, len(todo))):
            _save_atomic_npz(building / names[chunk_id], arrays)
            bar.update(count)

    _append_shard(source, kind, params, key, building, final, chunks, names, started)
    shutil.rmtree(building, ignore_errors=True)


def _check_labels(source: Source, wanted: np.ndarray, skip_invalid: bool) -> frozenset[int]:
    """Wanted records with a non-finite label (an error unless ``skip_invalid``)."""
    finite = np.isfinite(source.targets[wanted]).all(axis=1)
    bad_rows = wanted[~finite]
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
    chunk_id, structures, records, kind, params, skip_invalid, label_skips = task
    candidates = [(i, s) for i, s in zip(records, structures, strict=True) if i not in label_skips]
    skipped: list[tuple[int, str]] = [(i, "non-finite label") for i in records if i in label_skips]
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
    arrays["records"] = np.asarray(records, dtype=np.int64)
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


def _chunk_name(records: np.ndarray) -> str:
    """File of the chunk holding ``records``: their range, plus a digest unless contiguous."""
    first, stop = int(records[0]), int(records[-1]) + 1
    name = f"chunk-{first:09d}-{stop:09d}"
    if stop - first != records.size:
        name += "-" + hashlib.sha256(np.asarray(records, np.int64).tobytes()).hexdigest()[:12]
    return name + ".npz"


def _drop_foreign_chunks(building: Path, expected: set[str]) -> None:
    """Delete finished chunks of an earlier build that this build does not use.

    A build resumed with another chunk size or other records must not reuse chunks whose
    records overlap this build's chunks (duplicated graphs, molecules in two splits).
    """
    for path in building.glob("chunk-*.npz"):
        if path.name not in expected:
            path.unlink()


def _save_atomic_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())


def _append_shard(
    source: Source,
    kind: str,
    params: VoronoiParams | CutoffParams,
    key: str,
    building: Path,
    final: Path,
    chunks: list[np.ndarray],
    names: list[str],
    started: float,
) -> None:
    """Merge the finished chunks into a new shard of the entry, then update its manifest."""
    parts: dict[str, list[np.ndarray]] = {}
    for records, name in zip(chunks, names, strict=True):
        path = building / name
        with np.load(path) as chunk:
            stored = chunk["records"] if "records" in chunk.files else None
            if stored is None or not np.array_equal(stored, records):
                path.unlink()
                raise DataError(
                    f"graph chunk '{path}' holds other records than its name says; it was "
                    "removed, run the build again"
                )
            for array in chunk.files:
                if array != "records":
                    parts.setdefault(array, []).append(chunk[array])
    merged = {name: np.concatenate(arrays) for name, arrays in parts.items()}
    previous = read_manifest(final) if (final / "manifest.json").is_file() else None
    skipped = _merge_skipped(
        previous["skipped"] if previous else [],
        source,
        merged.pop("skipped_index"),
        merged.pop("skipped_reason"),
    )
    shards = list(previous["shards"]) if previous else []
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atom_count = merged.pop("atom_count")
    edge_count = merged.pop("edge_count")
    if merged["record_index"].size:
        merged["atom_ptr"] = np.concatenate([[0], np.cumsum(atom_count)]).astype(np.int64)
        merged["edge_ptr"] = np.concatenate([[0], np.cumsum(edge_count)]).astype(np.int64)
        merged["targets"] = source.targets[merged["record_index"]]
        merged["ids"] = np.array([source.ids[i] for i in merged["record_index"]], dtype=str)
        name = f"shard-{len(shards):05d}"
        staging = building / "shard"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for array, values in merged.items():
            np.save(staging / f"{array}.npy", values, allow_pickle=False)
        final.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(final / name, ignore_errors=True)  # left by an append killed before
        os.replace(staging, final / name)  # its manifest: never listed, never read
        shards.append(
            {
                "name": name,
                "n_graphs": int(merged["record_index"].size),
                "n_atoms": int(merged["atom_ptr"][-1]),
                "n_edges": int(merged["edge_ptr"][-1]),
                "build_seconds": round(time.perf_counter() - started, 3),
                "created": now,
            }
        )
    n_graphs = sum(s["n_graphs"] for s in shards)
    if not n_graphs:
        raise DataError(f"no valid structure left in '{source.name}' ({len(skipped)} skipped)")
    skipped_records = sum(1 for e in skipped if e.get("record") is not None)
    manifest = {
        "format_version": FORMAT_VERSION,
        "key": key,
        "versions": previous["versions"] if previous else library_versions(),
        "source": {
            "name": source.name,
            "fingerprint": source.fingerprint,
            "n_records": n_graphs + skipped_records,
        },
        "graph": {"kind": kind, "params": dataclasses.asdict(params)},
        "targets": list(source.target_names),
        "units": {t: source.units.get(t, "") for t in source.target_names},
        "n_graphs": n_graphs,
        "n_atoms": sum(s["n_atoms"] for s in shards),
        "n_edges": sum(s["n_edges"] for s in shards),
        "skipped": skipped,
        "shards": shards,
        "build_seconds": round(sum(s["build_seconds"] for s in shards), 3),
        "created": previous["created"] if previous else now,
        "arrays": previous["arrays"] if previous else sorted(merged),
    }
    write_json_atomic(final / "manifest.json", manifest)


def _merge_skipped(
    previous: list[dict[str, Any]], source: Source, indices: np.ndarray, reasons: np.ndarray
) -> list[dict[str, Any]]:
    """The manifest's ``skipped`` entries in file order, earlier builds' ones included.

    Frames rejected when the source was loaded come with ``record`` None; records whose
    label or graph failed carry their record index. All name ``file`` and ``frame`` (the
    file's own numbering, where known), ``id`` and ``reason``.
    """
    entries = list(previous)
    entries += [{"record": None} | item for item in source.invalid]
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
    unique = {json.dumps(e, sort_keys=True): e for e in entries}
    return sorted(
        unique.values(),
        key=lambda e: (str(e["file"]), -1 if e["frame"] is None else e["frame"]),
    )


def shard_folders(path: Path, manifest: dict[str, Any]) -> list[Path]:
    """Folders of the entry's shards, in order (format 1: the entry itself)."""
    if manifest["format_version"] == 1:
        return [Path(path)]
    return [Path(path) / shard["name"] for shard in manifest["shards"]]


def read_manifest(path: Path | str) -> dict[str, Any]:
    """Read and check the manifest of a cache entry."""
    manifest_path = Path(path) / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(f"'{path}' is not a graph cache entry (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"'{manifest_path}' is corrupt: {exc}") from None
    if manifest.get("format_version") not in READABLE_FORMATS:
        raise DataError(
            f"'{path}' has cache format {manifest.get('format_version')}, expected "
            f"{FORMAT_VERSION}; rebuild it"
        )
    return manifest
