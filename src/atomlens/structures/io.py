"""Read structures from files and in-memory objects into validated Structure records."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from atomlens.errors import DataError, StructureError
from atomlens.structures.record import DEFAULT_MIN_DISTANCE, Structure, make_structure


def from_ase(
    atoms: Any,
    *,
    source: str | None = None,
    frame: int | None = None,
    min_distance: float = DEFAULT_MIN_DISTANCE,
) -> Structure:
    """Convert an ``ase.Atoms`` into a validated Structure.

    ``atoms.info`` and the other per-atom arrays (tags, charges, ...) are kept, and so are
    the standard ASE results of an attached calculator: scalar ones (``energy``,
    ``free_energy``, ...) join ``info`` where it lacks the key, so they are labels like any
    ``info`` value (ASE >= 3.23 reads an extxyz ``energy=`` into a SinglePointCalculator,
    not into ``info``); per-atom ones (``forces``, ...) join ``arrays``.
    """
    info, arrays = _ase_extras(atoms)
    return make_structure(
        atoms.numbers,
        atoms.positions,
        np.asarray(atoms.cell[:]),
        atoms.pbc,
        source=source,
        frame=frame,
        info=info,
        arrays=arrays,
        min_distance=min_distance,
    )


def _ase_extras(atoms: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(info, per-atom arrays)`` of an ase.Atoms, with its calculator's results merged in.

    Only ASE's standard properties count (not, e.g., an AtomlensCalculator's own results).
    """
    from ase.calculators.calculator import all_properties
    from ase.io.extxyz import per_atom_properties

    info = dict(atoms.info)
    arrays = {
        name: np.array(values)
        for name, values in atoms.arrays.items()
        if name not in ("numbers", "positions")
    }
    results = getattr(atoms.calc, "results", None) if atoms.calc is not None else None
    for name, value in (results or {}).items():
        if name not in all_properties:
            continue
        if np.ndim(value) == 0:
            if name not in info and isinstance(value, int | float | np.integer | np.floating):
                info[name] = value.item() if isinstance(value, np.generic) else value
        elif name in per_atom_properties and np.shape(value)[:1] == (len(atoms),):
            arrays.setdefault(name, np.array(value))
    return info, arrays


def from_pymatgen(
    obj: Any,
    *,
    source: str | None = None,
    frame: int | None = None,
    min_distance: float = DEFAULT_MIN_DISTANCE,
) -> Structure:
    """Convert a pymatgen ``Structure`` (periodic) or ``Molecule`` (open) into a Structure."""
    where = source or type(obj).__name__
    if not obj.is_ordered:
        raise StructureError("disordered sites (partial occupancy) are not supported", where, frame)
    numbers = [site.specie.Z for site in obj]
    if hasattr(obj, "lattice"):
        return make_structure(
            numbers,
            obj.cart_coords,
            obj.lattice.matrix,
            True,
            source=where,
            frame=frame,
            min_distance=min_distance,
        )
    return make_structure(
        numbers,
        obj.cart_coords,
        None,
        False,
        source=where,
        frame=frame,
        min_distance=min_distance,
    )


def to_ase(structure: Structure) -> Any:
    """Convert a Structure back into an ``ase.Atoms`` (with its info and per-atom arrays)."""
    from ase import Atoms

    atoms = Atoms(
        numbers=structure.numbers,
        positions=structure.positions,
        cell=structure.cell if structure.is_periodic else None,
        pbc=structure.pbc,
    )
    atoms.info.update(structure.info)
    for name, values in structure.arrays.items():
        atoms.arrays[name] = np.array(values)
    return atoms


def as_structure(
    obj: Any, *, source: str | None = None, min_distance: float = DEFAULT_MIN_DISTANCE
) -> Structure:
    """Convert any supported in-memory object (Structure, ase, pymatgen) into a Structure."""
    if isinstance(obj, Structure):
        return obj
    module = type(obj).__module__
    if module.startswith("ase"):
        return from_ase(obj, source=source, min_distance=min_distance)
    if module.startswith("pymatgen"):
        return from_pymatgen(obj, source=source, min_distance=min_distance)
    raise TypeError(
        f"cannot convert {type(obj).__name__} to a structure; expected ase.Atoms, "
        "pymatgen Structure/Molecule or atomlens Structure"
    )


def read_structures(
    path: str | Path,
    index: str | int | slice = ":",
    *,
    format: str | None = None,
    min_distance: float = DEFAULT_MIN_DISTANCE,
    on_invalid: Callable[[StructureError], None] | None = None,
) -> Iterator[Structure]:
    """Read every frame of a file that ASE can read (extxyz, xyz, CIF, POSCAR, ASE db, ...).

    Args:
        path: File to read.
        index: ASE index string or slice selecting frames (default: all).
        format: ASE format name; guessed from the file name when None.
        min_distance: Smallest allowed interatomic distance in Angstrom.
        on_invalid: When given, a frame that parses but fails validation (overlapping
            atoms, NaN coordinates, ...) is passed to it as its StructureError and skipped
            instead of raised. Frames that cannot be parsed still raise.

    Yields:
        One validated Structure per frame; ``frame`` counts from 0 within the file (skipped
        frames keep their numbers).

    Raises:
        StructureError: Naming the file and frame when a frame cannot be parsed or is invalid.
        FileNotFoundError: If the file does not exist.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"structure file not found: '{path}'")
    source = str(path)
    if format == "db" or (format is None and path.suffix == ".db"):
        yield from _read_ase_db(path, index, min_distance, on_invalid)
        return
    numbers = _frame_numbers(index, lambda: _count_frames(source, format))
    # A '@' in the file name is part of the name, not ASE's 'file@index' selector.
    frames = ase.io.iread(source, index=index, format=format, do_not_split_by_at_sign=True)
    count = 0
    while True:
        frame = next(numbers, None)
        try:
            atoms = next(frames)
        except StopIteration:
            break
        except Exception as exc:  # ASE raises many types for malformed input
            raise StructureError(
                f"cannot parse: {_describe_parse_error(exc)}", source, frame
            ) from exc
        count += 1
        structure = _validated(atoms, source, frame, min_distance, on_invalid)
        if structure is not None:
            yield structure
    if count == 0:
        total = 0 if _selects_all(index) else _count_frames(source, format)
        if total == 0:
            raise StructureError("file contains no structures", source, None)
        raise StructureError(
            f"no frame {_describe_index(index)}: the file holds {total} structure(s), "
            f"frames 0 to {total - 1}",
            source,
            None,
        )


def _validated(
    atoms: Any,
    source: str,
    frame: int | None,
    min_distance: float,
    on_invalid: Callable[[StructureError], None] | None,
) -> Structure | None:
    """The frame as a Structure, or None when it is invalid and ``on_invalid`` took it."""
    try:
        return from_ase(atoms, source=source, frame=frame, min_distance=min_distance)
    except StructureError as exc:
        if on_invalid is None:
            raise
        on_invalid(exc)
        return None


def _selects_all(index: str | int | slice) -> bool:
    return not isinstance(index, int) and _as_slice(index) == slice(None)


def _describe_index(index: str | int | slice) -> str:
    """An index as the user wrote it: ``3``, ``2:5`` (a one-frame slice as its number)."""
    if isinstance(index, int):
        return str(index)
    chosen = _as_slice(index)
    start, stop, step = chosen.start, chosen.stop, chosen.step
    if start is not None and start >= 0 and stop == start + 1 and step in (None, 1):
        return str(start)
    text = f"{'' if start is None else start}:{'' if stop is None else stop}"
    return text + (f":{step}" if step is not None else "")


def _count_frames(source: str, format: str | None) -> int:
    """Frames in a file (parses it once; used only when the index needs it)."""
    import ase.io

    try:
        frames = ase.io.iread(source, index=":", format=format, do_not_split_by_at_sign=True)
        return sum(1 for _ in frames)
    except Exception as exc:  # ASE raises many types for malformed input
        raise StructureError(f"cannot parse: {_describe_parse_error(exc)}", source, None) from exc


def _frame_numbers(index: str | int | slice, count: Callable[[], int]) -> Iterator[int]:
    """Positions in the file of the frames an index selects, counted from 0.

    Forward selections (no negative start, positive step) need no count; others call
    ``count`` for the number of frames in the file.
    """
    chosen = (
        slice(index, index + 1 if index != -1 else None)
        if isinstance(index, int)
        else (_as_slice(index))
    )
    start, step = chosen.start, chosen.step
    if (
        (start is None or start >= 0)
        and (step is None or step > 0)
        and (chosen.stop is None or chosen.stop >= 0)
    ):
        yield from itertools.count(start or 0, step or 1)
        return
    yield from range(count())[chosen]


def _read_ase_db(
    path: Path,
    index: str | int | slice,
    min_distance: float,
    on_invalid: Callable[[StructureError], None] | None = None,
) -> Iterator[Structure]:
    """Rows of an ASE database; key-value pairs become ``info`` (labels), plus ``db_id``."""
    from ase.db import connect

    try:
        rows = list(connect(str(path)).select())
    except Exception as exc:  # sqlite and JSON back-ends raise their own types
        raise StructureError(f"cannot open ASE database: {exc}", str(path), None) from exc
    if not rows:
        raise StructureError("database contains no structures", str(path), None)
    positions = list(range(len(rows)))
    selected = positions[_as_slice(index)] if not isinstance(index, int) else [positions[index]]
    for frame in selected:
        row = rows[frame]
        atoms = row.toatoms()
        atoms.info.update(row.key_value_pairs)
        atoms.info["db_id"] = row.id
        structure = _validated(atoms, str(path), frame, min_distance, on_invalid)
        if structure is not None:
            yield structure


def _as_slice(index: str | slice) -> slice:
    if isinstance(index, slice):
        return index
    parts = [int(p) if p.strip() else None for p in str(index).split(":")]
    if len(parts) == 1:
        return slice(parts[0], None if parts[0] == -1 else parts[0] + 1)
    return slice(*parts)


def read_many(
    paths: Iterable[str | Path], *, min_distance: float = DEFAULT_MIN_DISTANCE
) -> list[Structure]:
    """Read all frames of several files into one list."""
    return [s for p in paths for s in read_structures(p, min_distance=min_distance)]


def _describe_parse_error(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"unknown element or key {exc}"
    return f"{type(exc).__name__}: {exc}"


def read_structure_files(files: Iterable[Path | str]) -> list[Structure]:
    """All structures of the given files (errors name the file and frame)."""
    structures: list[Structure] = []
    for path in files:
        found = list(read_structures(path))
        if not found:
            raise DataError(f"'{path}' holds no structures")
        structures.extend(found)
    return structures
