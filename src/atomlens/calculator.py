"""An ASE calculator exposing a trained model's prediction and per-atom attention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator, all_changes

from atomlens.inference import load_model
from atomlens.units import HARTREE_TO_EV

# Targets that are a standard ASE property of the whole structure: target name -> property.
# Only totals: per-atom energies (formation_energy_per_atom, energy_per_atom) are not ASE's
# ``energy`` and stay ``prediction``. QM9's u0 (U0) is the total internal energy at 0 K; its
# u298/h298/g298 are thermal quantities, and g298 is a Gibbs energy, not ASE's (Mermin)
# ``free_energy``, so none of them is mapped.
STANDARD_PROPERTIES = {
    "energy": "energy",
    "total_energy": "energy",
    "u0": "energy",
    "U0": "energy",
    "free_energy": "free_energy",
}
# Units an energy may come in, as a factor to ASE's eV.
ENERGY_UNITS = {"eV": 1.0, "meV": 1e-3, "Ha": HARTREE_TO_EV, "Hartree": HARTREE_TO_EV}


def standard_property(target: str, unit: str) -> tuple[str, float] | None:
    """The ASE property a target stands for and the factor from its unit to eV, else None."""
    name = STANDARD_PROPERTIES.get(target)
    if name is None or unit not in ENERGY_UNITS:
        return None
    return name, ENERGY_UNITS[unit]


class AtomlensCalculator(Calculator):
    """ASE calculator: ``atoms.calc = AtomlensCalculator(run_dir)``.

    ``run_dir`` is a training run directory or a shipped model's name
    (``AtomlensCalculator("qm9-homo")``; see ``atomlens models``), as for
    :func:`atomlens.inference.load_model`.

    Properties: ``"prediction"`` (the trained target in the model's unit, e.g. HOMO in eV)
    and ``"atom_attention"`` (per-atom global attention, sums to 1). A model trained on a
    total energy (target ``energy``, ``total_energy`` or QM9's ``u0``/``U0``, in eV, meV
    or Hartree) also gives ASE's ``"energy"`` in eV, so ``atoms.get_potential_energy()``
    works; one trained on ``free_energy`` gives ``"free_energy"``. Per-atom targets such as
    ``formation_energy_per_atom`` are not total energies and only give ``"prediction"``.
    There are no forces: asking for them raises ASE's PropertyNotImplementedError.

    Every calculation also writes ``atomlens_<target>`` and ``atomlens_<target>_unit`` (when
    the model has a unit) into ``atoms.info`` and ``atomlens_attention`` into
    ``atoms.arrays`` of the Atoms it was asked about, so ``ase.io.write`` (extxyz) keeps
    them; extxyz writes the standard properties itself. ``device`` is where the model runs
    (``auto``: CUDA if available, else CPU); results are always plain numbers/numpy.
    """

    def __init__(
        self, run_dir: Path | str, checkpoint: str = "best", device: str = "auto", **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.predictor = load_model(run_dir, checkpoint, device)
        self.standard = standard_property(self.predictor.target, self.predictor.unit)
        self.implemented_properties = ["prediction", "atom_attention"]
        if self.standard is not None:
            self.implemented_properties.append(self.standard[0])

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):  # noqa: D102
        super().calculate(atoms, properties, system_changes)
        (result,) = self.predictor.predict(self.atoms)
        self.results = {"prediction": result.value, "atom_attention": result.atom_attention}
        if self.standard is not None:
            name, factor = self.standard
            self.results[name] = result.value * factor
        if atoms is not None:  # the caller's Atoms: custom results survive ase.io.write
            atoms.info.update(result.labels)
            atoms.arrays["atomlens_attention"] = result.atom_attention.copy()
