"""Models: Batch -> dict of named outputs (``prediction``, ``atom_attention``, ...)."""

from atomlens.models.scann import Scann, ScannConfig

__all__ = ["Scann", "ScannConfig"]
