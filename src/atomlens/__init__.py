"""atomlens: learn material properties from atomic structure and see which atoms matter.

``import atomlens`` is light (no torch): :func:`load_model`, :func:`read_structures` and
:func:`explain` are imported on first use.

Example:
    >>> import atomlens
    >>> model = atomlens.load_model("runs/demo")  # doctest: +SKIP
    >>> items = atomlens.explain(model, atomlens.read_structures("mols.xyz"))  # doctest: +SKIP
"""

from __future__ import annotations

from atomlens.errors import AtomlensError, DataError, StructureError

__version__ = "0.1.0"

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

    from atomlens import explain
    from atomlens.inference import load_model
    from atomlens.structures import read_structures

# name -> (module, attribute; None: the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "load_model": ("atomlens.inference", "load_model"),
    "read_structures": ("atomlens.structures", "read_structures"),
    # the package atomlens.explain; calling it calls atomlens.explain.explain
    "explain": ("atomlens.explain", None),
}

__all__ = [
    "AtomlensError",
    "DataError",
    "StructureError",
    "__version__",
    "explain",
    "load_model",
    "read_structures",
]


def __getattr__(name: str) -> Any:
    """Import the lazy exports on first access."""
    if name not in _LAZY:
        raise AttributeError(f"module 'atomlens' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
