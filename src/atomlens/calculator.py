"""An ASE calculator exposing a trained model's prediction and per-atom attention."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ase.calculators.calculator import Calculator, all_changes

from atomlens.inference import load_model


class AtomlensCalculator(Calculator):
    """ASE calculator: ``atoms.calc = AtomlensCalculator(run_dir)``.

    Properties: ``"prediction"`` (the trained target, e.g. HOMO in eV) and
    ``"atom_attention"`` (per-atom global attention, sums to 1). Read them with
    ``atoms.calc.get_property("prediction", atoms)``. ``device`` is where the model runs
    (``auto``: CUDA if available, else CPU); results are always plain numbers/numpy.
    """

    implemented_properties: ClassVar[list[str]] = ["prediction", "atom_attention"]

    def __init__(
        self, run_dir: Path | str, checkpoint: str = "best", device: str = "auto", **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.predictor = load_model(run_dir, checkpoint, device)

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):  # noqa: D102
        super().calculate(atoms, properties, system_changes)
        (result,) = self.predictor.predict(self.atoms)
        self.results = {"prediction": result.value, "atom_attention": result.atom_attention}
