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
        run_dir: A training run directory.
        checkpoint: ``best`` or ``last``.
        device: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.

    Raises:
        DataError: If the run, its checkpoint or the device is unusable.
    """

    def __init__(
        self, run_dir: Path | str, checkpoint: str = "best", device: str | torch.device = "auto"
    ):
        self.device = resolve_device(device)
        self.run_dir = Path(run_dir)
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
        state = load_checkpoint(
            self.run_dir / "checkpoints" / f"{checkpoint}.pt", map_location="cpu"
        )
        self.model = build_model(self.config.model)
        try:
            self.model.load_state_dict(state["model"], strict=True)
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
            DataError: If the split or the run's graph cache is missing.
        """
        from atomlens.datasets import GraphDataset, Split, load_source

        split = Split.load(self.run_dir / "split.json")
        if split_name not in ("train", "val", "test"):
            raise DataError(f"unknown split {split_name!r}; use train, val or test")
        indices = getattr(split, split_name)
        if n is not None and n < len(indices):
            indices = np.sort(np.random.default_rng(seed).choice(indices, n, replace=False))
        entry = Path(self.metadata["cache_entry"])
        if not (entry / "manifest.json").is_file():
            raise DataError(
                f"the run's graph cache '{entry}' is gone; rebuild it with "
                f"`atomlens train {self.run_dir / 'config.yaml'}` (it resumes)"
            )
        ids = GraphDataset(entry).ids[indices]
        data = self.config.data
        source = load_source(
            data.source, targets=[data.target], limit=data.limit, skip_invalid=data.skip_invalid
        )
        position = {str(record_id): k for k, record_id in enumerate(source.ids)}
        missing = [str(i) for i in ids if str(i) not in position]
        if missing:
            raise DataError(
                f"{len(missing)} record(s) of the {split_name} split (e.g. {missing[0]}) are no "
                f"longer in the source '{data.source}'"
            )
        rows = [position[str(i)] for i in ids]
        return [source.structures[k] for k in rows], source.targets[rows, 0]

    def check_elements(self, records: list[Structure]) -> None:
        """Raise a StructureError naming the first structure with an element never trained on."""
        known = set(self.metadata["elements"])
        for record in records:
            unknown = sorted({int(z) for z in record.numbers} - known)
            if unknown:
                from ase.data import chemical_symbols

                names = ", ".join(chemical_symbols[z] for z in unknown)
                raise record.fail(
                    f"element(s) {names} never seen in training; the model cannot predict for them"
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
        self.check_elements(records)
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
    """Load a trained run (``best`` or ``last`` checkpoint) for prediction on ``device``.

    Results are numpy arrays on the CPU whatever the device.
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
