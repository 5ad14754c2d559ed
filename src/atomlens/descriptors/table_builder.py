"""``atomlens featurize``: a feature table (CSV) for many structures, in parallel.

A structure whose features cannot be computed is reported by id and skipped; the others
are kept. Numeric labels of each structure (extxyz ``info``) are carried into the table.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence

import numpy as np
from pymatgen.core import Composition
from tqdm.auto import tqdm

from atomlens.descriptors.features import featurize
from atomlens.errors import AtomlensError
from atomlens.structures.record import Structure, structure_name
from atomlens.units import KB_EV


def _one(task: tuple[int, Structure, str]) -> tuple[int, dict | str]:
    index, structure, feature_set = task
    try:
        return index, featurize(structure, feature_set)
    except AtomlensError as exc:
        return index, str(exc)


def _run(tasks: list, workers: int) -> Iterator[tuple[int, dict | str]]:
    if workers <= 1 or len(tasks) < 2:
        yield from map(_one, tasks)
        return
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool:
        yield from pool.imap(_one, tasks, chunksize=8)


def feature_rows(
    structures: Sequence[Structure],
    feature_set: str = "all",
    *,
    workers: int = 2,
    progress: bool = True,
) -> tuple[list[dict], list[tuple[str, str]]]:
    """One row per structure (id, composition, labels, features) and the failures.

    Returns:
        ``(rows, failures)`` where each failure is ``(structure id, reason)``.
    """
    tasks = [(k, s, feature_set) for k, s in enumerate(structures)]
    rows: list[dict] = []
    failures: list[tuple[str, str]] = []
    for index, result in tqdm(
        _run(tasks, workers), total=len(tasks), desc="features", disable=not progress
    ):
        structure = structures[index]
        name = structure_name(structure)
        if isinstance(result, str):
            failures.append((name, result))
            continue
        labels = {
            k: float(v)
            for k, v in structure.info.items()
            if isinstance(v, int | float | np.number) and not isinstance(v, bool)
        }
        if labels.get("temperature", 0) > 0:  # the Arrhenius variable, as in the paper
            labels["inv_kBT"] = 1.0 / (KB_EV * labels["temperature"])
        composition = Composition(structure.formula).reduced_formula
        rows.append({"id": name, "composition": composition} | labels | result)
    return rows, failures
