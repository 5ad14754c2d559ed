"""Use a trained run: ``load_model(run_dir).predict(structures)``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atomlens.batching import Batch, batch_from_graphs
from atomlens.config import TrainConfig, validate_config
from atomlens.datasets.cache import graphs_of, make_params
from atomlens.device import resolve_device, to_cpu
from atomlens.errors import DataError, StructureError
from atomlens.graphs.graph import Graph
from atomlens.models import build_model
from atomlens.structures.io import as_structure
from atomlens.structures.record import Structure
from atomlens.training.checkpoint import load_checkpoint
from atomlens.training.scaling import Scaling
from atomlens.zoo import WEIGHTS, resolve_model


@dataclass(frozen=True)
class Prediction:
    """Prediction for one structure.

    Attributes:
        value: The predicted property, in ``unit``.
        atom_attention: Global attention of each atom (sums to 1).
        structure: The structure it was computed for.
        target: Name of the property.
        unit: Its unit.
    """

    value: float
    atom_attention: np.ndarray
    structure: Structure
    target: str
    unit: str

    def top_atoms(self, k: int = 3) -> list[tuple[int, int, float]]:
        """The k most attended atoms as (index, atomic number, attention)."""
        order = np.argsort(-self.atom_attention)[:k]
        return [
            (int(i), int(self.structure.numbers[i]), float(self.atom_attention[i])) for i in order
        ]

    @property
    def labels(self) -> dict[str, Any]:
        """The prediction and its unit as ``atomlens_<target>`` / ``atomlens_<target>_unit``.

        The unit is left out when the model has none (an empty extxyz value does not parse).
        """
        labels: dict[str, Any] = {f"atomlens_{self.target}": self.value}
        if self.unit:
            labels[f"atomlens_{self.target}_unit"] = self.unit
        return labels

    def to_ase(self) -> Any:
        """The structure as ``ase.Atoms`` carrying the prediction, so ``ase.io.write`` keeps it.

        ``info`` gains :attr:`labels`, ``arrays`` gains ``atomlens_attention``; the input's
        own info and per-atom arrays (forces, tags, ...) are kept.
        """
        from atomlens.structures.io import to_ase

        atoms = to_ase(self.structure)
        atoms.info.update(self.labels)
        atoms.arrays["atomlens_attention"] = self.atom_attention.copy()
        return atoms

    def to_pymatgen(self) -> Any:
        """The structure as a pymatgen ``Structure`` (crystal) or ``Molecule`` (molecule).

        Each site has the property ``atomlens_attention``; ``.properties`` holds
        :attr:`labels` (the prediction and its unit).

        Raises:
            DataError: If pymatgen is not installed.
        """
        try:
            from pymatgen.core import Lattice, Molecule
            from pymatgen.core import Structure as PymatgenStructure
        except ImportError:
            raise DataError("to_pymatgen needs pymatgen: pip install pymatgen") from None
        record = self.structure
        sites = {"atomlens_attention": [float(a) for a in self.atom_attention]}
        if record.is_periodic:
            return PymatgenStructure(
                Lattice(record.cell),
                record.numbers.tolist(),
                record.positions,
                coords_are_cartesian=True,
                site_properties=sites,
                properties=self.labels,
            )
        return Molecule(
            record.numbers.tolist(),
            record.positions,
            site_properties=sites,
            properties=self.labels,
            charge_spin_check=False,
        )


class Predictor:
    """A trained SCANN or SEN model with its graph parameters and target scaling.

    The model lives on ``device``. It may be called with CPU batches (and CPU tensor
    arguments such as ``readout_mask``): they are moved to its device, and its outputs
    come back on the CPU, so callers never handle devices.

    Args:
        run_dir: A training run directory, or the name of a shipped model (``qm9-homo``; see
            ``atomlens models``). An existing directory is always taken as a run.
        checkpoint: ``best`` or ``last`` (a shipped model holds its best weights only).
        device: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.

    Attributes:
        name: The shipped model's name, or the run directory as given.
        shipped: True for a shipped model (it has no split or graph cache of its own).

    Raises:
        DataError: If the run (or name), its checkpoint or the device is unusable.
    """

    def __init__(
        self, run_dir: Path | str, checkpoint: str = "best", device: str | torch.device = "auto"
    ):
        self.device = resolve_device(device)
        self.run_dir, shipped_name = resolve_model(run_dir)
        self.shipped = shipped_name is not None
        self.name = shipped_name or str(run_dir)
        if self.shipped and checkpoint != "best":
            raise DataError(f"the shipped model '{run_dir}' holds its best weights only")
        config_file = self.run_dir / "config.yaml"
        meta_file = self.run_dir / "metadata.json"
        if not config_file.is_file() or not meta_file.is_file():
            raise DataError(
                f"'{run_dir}' is not a training run (config.yaml/metadata.json missing)"
            )
        import yaml

        self.config: TrainConfig = validate_config(
            yaml.safe_load(config_file.read_text()), str(config_file)
        )
        try:
            self.metadata: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
            if not isinstance(self.metadata, dict) or not {"graph", "scaling", "target"} <= set(
                self.metadata
            ):
                raise ValueError("graph, scaling or target missing")
        except ValueError as exc:  # also JSONDecodeError and UnicodeDecodeError
            reason = " ".join(str(exc).split())
            raise DataError(f"'{meta_file}' is corrupt ({reason}); train the run again") from None
        if self.shipped:  # the state dict itself
            weights = load_checkpoint(self.run_dir / WEIGHTS, map_location="cpu")
        else:
            weights = load_checkpoint(
                self.run_dir / "checkpoints" / f"{checkpoint}.pt", map_location="cpu"
            )["model"]
        self.model = build_model(self.config.model)
        try:
            self.model.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
            raise DataError(
                f"the checkpoint of '{run_dir}' does not fit the model its config.yaml "
                f"describes (made by another atomlens version?): {first[:300]}"
            ) from None
        self.model.eval()
        if self.device.type != "cpu":
            _serve_from_cpu(self.model.to(self.device), self.device)
        self.graph_kind = str(self.metadata["graph"].get("kind", "voronoi"))
        self.graph_params = make_params(self.graph_kind, **self.metadata["graph"]["params"])
        self.scaling = Scaling(
            float(self.metadata["scaling"]["mean"]), float(self.metadata["scaling"]["std"])
        )
        self.target = str(self.metadata["target"])
        self.unit = str(self.metadata.get("unit", ""))

    def split_structures(
        self, split_name: str = "test", n: int | None = None, seed: int = 0
    ) -> tuple[list[Structure], np.ndarray]:
        """Structures of one of the run's saved splits, with their reference labels.

        Args:
            split_name: ``test``, ``val`` or ``train``.
            n: Take a random sample of this many (default: all of the split).
            seed: Seed of the sample.

        Raises:
            DataError: If the split or the run's graph cache is missing, or the model is a
                shipped one (which has no split).
        """
        indices = self.split_indices(split_name)
        if n is not None and n < len(indices):
            indices = np.sort(np.random.default_rng(seed).choice(indices, n, replace=False))
        return self.records_at(indices, f"the {split_name} split")

    def split_indices(self, split_name: str = "test") -> np.ndarray:
        """Rows of the run's data set in one of its saved splits (``train``, ``val``, ``test``).

        The run's data set holds its train, val and test records in turn (see
        :mod:`atomlens.datasets.run_data`).

        Raises:
            DataError: If the split is unknown or missing, or the model is a shipped one.
        """
        from atomlens.datasets.run_data import open_run_data

        if self.shipped:
            raise DataError(
                f"'{self.name}' is a shipped model: it has no saved split; give structure files"
            )
        return open_run_data(self.run_dir, self.metadata).rows.part(split_name)

    def records_at(
        self, indices: np.ndarray, what: str = "the selection"
    ) -> tuple[list[Structure], np.ndarray]:
        """The source structures of rows ``indices`` of the run's data set, with their labels.

        Args:
            indices: Rows of the run's data set (e.g. from :meth:`split_indices`).
            what: How errors name the rows, e.g. ``the test split``.

        Raises:
            DataError: If the run's graph cache is gone or the source lost a record.
        """
        from atomlens.datasets.run_data import open_run_data, structures_of_rows

        if self.shipped:
            raise DataError(f"'{self.name}' is a shipped model: it has no data source")
        run = open_run_data(self.run_dir, self.metadata)
        return structures_of_rows(self.config.data, run, indices, what)

    def check_structures(self, records: list[Structure]) -> None:
        """Refuse structures the model cannot handle, naming the first such structure.

        Refused: elements never seen in training; a periodic structure given to a model
        trained on molecules only, and a molecule given to one trained on crystals only
        (metadata ``periodic``: true, false, or null/absent for mixed or older runs).

        Raises:
            StructureError: Naming the structure and what the model knows.
        """
        from ase.data import chemical_symbols

        known = set(self.metadata["elements"])
        periodic = self.metadata.get("periodic")
        for record in records:
            unknown = sorted({int(z) for z in record.numbers} - known)
            if unknown:
                names = ", ".join(chemical_symbols[z] for z in unknown)
                knows = ", ".join(chemical_symbols[z] for z in sorted(known))
                raise record.fail(
                    f"element(s) {names} never seen in training; the model '{self.name}' "
                    f"cannot predict for them (it knows {knows})"
                )
            if periodic is not None and record.is_periodic != periodic:
                given, trained = (
                    ("a periodic structure", "molecules")
                    if record.is_periodic
                    else ("a molecule (no periodic direction)", "periodic crystals")
                )
                raise record.fail(
                    f"{given}, but the model '{self.name}' was trained on {trained} only"
                )

    @torch.no_grad()
    def forward(
        self, structures: Any, batch_size: int = 256, return_local_attention: bool = False
    ) -> Iterator[tuple[list[Structure], list[Graph], dict]]:
        """Run the model chunk by chunk on validated structures.

        Yields:
            ``(structures, graphs, output)`` per chunk, where ``output`` holds the model's
            tensors with ``prediction`` already in physical units.

        Raises:
            StructureError: Naming the structure when its graph cannot be built.
        """
        items = structures if isinstance(structures, list | tuple) else [structures]
        records = [as_structure(s, source=f"input {k}") for k, s in enumerate(items)]
        self.check_structures(records)
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            graphs = graphs_of(chunk, self.graph_kind, self.graph_params)
            for graph in graphs:
                if isinstance(graph, StructureError):
                    raise graph
            output = self.model(
                batch_from_graphs(graphs), return_local_attention=return_local_attention
            )
            output["prediction"] = self.scaling.to_physical(output["prediction"])
            yield chunk, graphs, output

    def predict(self, structures: Any, batch_size: int = 256) -> list[Prediction]:
        """Predict for one or many structures (ase.Atoms, pymatgen, or atomlens Structure).

        Raises:
            StructureError: Naming the structure when its graph cannot be built.
        """
        results: list[Prediction] = []
        for chunk, _, output in self.forward(structures, batch_size):
            values = output["prediction"].numpy()
            alpha = output["atom_attention"].numpy()
            bounds = np.concatenate([[0], np.cumsum([len(s) for s in chunk])])
            for k, structure in enumerate(chunk):
                results.append(
                    Prediction(
                        value=float(values[k]),
                        atom_attention=alpha[bounds[k] : bounds[k + 1]].copy(),
                        structure=structure,
                        target=self.target,
                        unit=self.unit,
                    )
                )
        return results


def load_model(
    run_dir: Path | str, checkpoint: str = "best", device: str | torch.device = "auto"
) -> Predictor:
    """Load a trained run (``best`` or ``last`` checkpoint) or a shipped model for prediction.

    ``run_dir`` is a run directory or a shipped model's name (``load_model("qm9-homo")``;
    see ``atomlens models``). Results are numpy arrays on the CPU whatever the ``device``.
    """
    return Predictor(run_dir, checkpoint, device)


def _serve_from_cpu(model: torch.nn.Module, device: torch.device) -> None:
    """Hooks: move a forward's Batch/tensor arguments to ``device``, its outputs to the CPU."""

    def move(value: Any) -> Any:
        return value.to(device) if isinstance(value, Batch | torch.Tensor) else value

    def inputs(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return tuple(move(a) for a in args), {k: move(v) for k, v in kwargs.items()}

    def outputs(module: torch.nn.Module, args: tuple, output: Any) -> Any:
        return to_cpu(output)

    model.register_forward_pre_hook(inputs, with_kwargs=True)
    model.register_forward_hook(outputs)
