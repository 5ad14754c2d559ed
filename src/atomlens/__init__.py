"""atomlens: learn material properties from atomic structure and see which atoms matter."""

from atomlens.errors import AtomlensError, DataError, StructureError

__version__ = "0.1.0"

__all__ = ["AtomlensError", "DataError", "StructureError", "__version__"]
