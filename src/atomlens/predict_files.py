"""Predict for structure files; write extxyz (``atomlens_`` keys) and CSV tables.

Outputs are written all or nothing: into a staging folder inside the output folder first,
and moved into place only when every input succeeded (see :func:`staged_outputs`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from atomlens.explain.attention import explain
from atomlens.explain.tables import write_extxyz
from atomlens.files import write_csv
from atomlens.inference import Predictor
from atomlens.structures.io import read_structures

STAGING_PREFIX = ".atomlens-staging-"


def output_stems(files: Sequence[Path]) -> list[str]:
    """A distinct output name stem for each input file, in order.

    The file's stem when no other input has the same one; otherwise ``<parent>_<stem>``
    (``a/mol.xyz`` and ``b/mol.xyz`` give ``a_mol`` and ``b_mol``); where that still
    clashes (the same file twice, ``mol.xyz`` and ``mol.cif`` in one folder) a counter
    follows: ``<parent>_<stem>_1``, ``<parent>_<stem>_2``, ...
    """
    stems = [Path(p).stem for p in files]
    shared = Counter(stems)
    names = [
        s if shared[s] == 1 else f"{Path(p).resolve().parent.name or 'root'}_{s}"
        for p, s in zip(files, stems, strict=True)
    ]
    totals = Counter(names)
    taken = set(names)
    result: list[str] = []
    for name in names:
        if totals[name] > 1:
            k = 1
            while f"{name}_{k}" in taken:
                k += 1
            name = f"{name}_{k}"
            taken.add(name)
        result.append(name)
    return result


@contextmanager
def staged_outputs(out_dir: Path, stale: Sequence[str] = ()) -> Iterator[Path]:
    """Yield a staging folder inside ``out_dir``; its files replace the outputs on success.

    Everything is written into the staging folder; when the block succeeds each file is
    moved (``os.replace``) to the same relative path in ``out_dir``, after deleting the
    files of ``out_dir`` that match the glob patterns ``stale`` (outputs of an earlier run
    that this one does not rewrite). When the block fails, the staging folder is removed
    and ``out_dir`` is left as it was (a folder created for this run is removed again when
    it is empty).
    """
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    try:
        yield staging
        new = sorted(p for p in staging.rglob("*") if p.is_file())
        keep = {out_dir / p.relative_to(staging) for p in new}
        for pattern in stale:
            for old in out_dir.glob(pattern):
                if old.is_file() and old not in keep:
                    old.unlink()
        for path in new:
            target = out_dir / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)


def predict_files(predictor: Predictor, files: list[Path], out_dir: Path) -> list[Path]:
    """Write ``<name>.atomlens.extxyz`` per input plus ``predictions.csv``/``attention.csv``.

    ``<name>`` is the input's stem, made distinct where several inputs share one (see
    :func:`output_stems`). Nothing in ``out_dir`` changes unless every input succeeds.

    Returns:
        The files written (their final paths in ``out_dir``).
    """
    prediction_rows: list[list] = []
    attention_rows: list[list] = []
    names = output_stems(files)
    with staged_outputs(out_dir) as staging:
        written: list[Path] = []
        for path, name in zip(files, names, strict=True):
            explanations = explain(predictor, list(read_structures(path)))
            written.append(write_extxyz(explanations, staging / f"{name}.atomlens.extxyz"))
            for item in explanations:
                top = int(item.attention.argmax())
                frame = item.structure.frame
                prediction_rows.append(
                    [
                        str(path),
                        frame,
                        item.structure.formula,
                        len(item.structure),
                        item.value,
                        predictor.unit,
                        f"{item.symbols[top]}{top}",
                        f"{name}.atomlens.extxyz",
                    ]
                )
                attention_rows.extend(
                    [str(path), frame, atom, symbol, float(score), int(rank)]
                    for atom, (symbol, score, rank) in enumerate(
                        zip(item.symbols, item.attention, item.rank, strict=True)
                    )
                )
        header = ["file", "frame", "formula", "n_atoms", predictor.target, "unit"]
        header += ["most_attended_atom", "output"]
        written.append(write_csv(staging / "predictions.csv", header, prediction_rows))
        header = ["file", "frame", "atom", "element", "attention", "rank"]
        written.append(write_csv(staging / "attention.csv", header, attention_rows))
        written = [out_dir / p.relative_to(staging) for p in written]
    return written
