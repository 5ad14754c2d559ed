"""File helpers: atomic writes (temporary sibling, then rename), strict JSON, output checks."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block succeeds.

    A killed or failing writer leaves the previous file (or none) in place, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")  # keeps the suffix
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporary_files(folder: Path) -> list[Path]:
    """Delete temporary files of :func:`atomic_path` that killed writers left in ``folder``.

    A file is stale when the process that wrote it no longer runs; a live writer's file is
    kept. Returns the files removed.
    """
    removed = []
    for path in folder.glob(".*.tmp*"):
        match = re.search(r"\.tmp(\d+)", path.name)
        if match is None or not path.is_file() or _process_alive(int(match.group(1))):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own earlier incarnation cannot be writing now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def safe_filename(text: str, limit: int = 60) -> str:
    """A file-name fragment made of letters, digits, '-', '_' and '.' only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:limit] or "file"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (CSV injection)."""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text == text.strip()


def _needs_quote(text: str) -> bool:
    rest = text.lstrip("'")
    return rest[:1] in FORMULA_STARTS and not _is_number(rest)


def csv_cell(value: Any) -> Any:
    """``value`` made safe for a spreadsheet: a text cell that would start a formula gets a ``'``.

    Only ``str`` values change, and only those starting with ``=``, ``+``, ``-``, ``@``, a tab
    or a carriage return (after any leading quotes) that are not plain numbers: ``"-cmd"``
    becomes ``"'-cmd"``, ``"-1.5"`` and the number ``-1.5`` stay as they are. Undone exactly by
    :func:`csv_text`.
    """
    if isinstance(value, str) and _needs_quote(value):
        return "'" + value
    return value


def csv_text(text: str) -> str:
    """The original text of a cell :func:`csv_cell` neutralised (other text is unchanged)."""
    if text.startswith("'") and _needs_quote(text[1:]):
        return text[1:]
    return text


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    """Write a CSV table atomically; text cells are neutralised against formulas (``csv_cell``)."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([csv_cell(c) for c in header])
        writer.writerows([csv_cell(c) for c in row] for row in rows)
    return path


def to_strict_json(value: Any) -> Any:
    """``value`` with numpy types made plain and every non-finite float turned into None.

    Dicts, lists, tuples, numpy arrays and scalars and dataclasses are converted
    recursively, so the result serialises as strict JSON (no bare NaN or Infinity).
    """
    if isinstance(value, dict):
        return {
            str(k) if not isinstance(k, str) else k: to_strict_json(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [to_strict_json(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return to_strict_json(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_strict_json(dataclasses.asdict(value))
    return value


def dumps_json(value: Any, indent: int | None = 2, **kwargs: Any) -> str:
    """Strict JSON text of ``value`` (see :func:`to_strict_json`); non-finite floats are null."""
    return json.dumps(to_strict_json(value), indent=indent, allow_nan=False, **kwargs)


def write_json_atomic(path: Path | str, value: Any, indent: int | None = 2) -> Path:
    """Write ``value`` as strict JSON (non-finite floats as null) to ``path`` atomically."""
    return write_text_atomic(path, dumps_json(value, indent=indent) + "\n")


def check_output_dir(path: Path | str, option: str = "--out") -> Path:
    """Make sure ``path`` is, or can become, a writable folder, before any computation.

    Nothing is created: a probe file is written to and removed from ``path`` or its nearest
    existing ancestor, so an unwritable location fails at once with a one-line error instead
    of after the work.

    Raises:
        DataError: Naming ``option`` and the path when it (or an ancestor) is a file or the
            location cannot be written.
    """
    from atomlens.errors import DataError

    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is an existing file" if existing == path else f"lies under the file '{existing}'"
        raise DataError(f"{option} '{path}' {where}, not a folder")
    _probe(existing, f"{option} '{path}'")
    return path


def _probe(folder: Path, what: str) -> None:
    """Write and remove an empty file in ``folder``; a DataError naming ``what`` if that fails."""
    from atomlens.errors import DataError

    try:
        probe = folder / f".atomlens-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DataError(f"{what} cannot be written: {describe_os_error(exc)}") from None


def check_output_file(path: Path | str, option: str = "--out") -> Path:
    """Make sure a file can be written at ``path`` (its folder is created), before computing.

    Raises:
        DataError: Naming ``option`` and the path when it is a folder or cannot be written.
    """
    from atomlens.errors import DataError

    path = Path(path)
    if path.is_dir():
        raise DataError(f"{option} '{path}' is an existing folder, not a file")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise DataError(f"{option} '{path}' lies under the file '{parent}', not a folder")
    _probe(parent, f"{option} '{path}'")
    return path


def describe_os_error(exc: OSError) -> str:
    """One line for an OS error: its reason and the file(s) it names."""
    text = str(exc)
    reason = exc.strerror or (text.splitlines()[0] if text else type(exc).__name__)
    names = [f"'{n}'" for n in (exc.filename, exc.filename2) if n is not None]
    return f"{reason}: {' -> '.join(names)}" if names else reason
