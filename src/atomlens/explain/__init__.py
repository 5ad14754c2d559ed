"""Explanations: per-atom attention as files, an offline HTML viewer, figures, faithfulness.

The package is callable: ``atomlens.explain(model, structures)`` is :func:`explain`.
"""

import sys
import types
from typing import Any

from atomlens.explain.attention import Explanation, explain
from atomlens.explain.faithfulness import FaithfulnessReport, faithfulness

__all__ = ["Explanation", "FaithfulnessReport", "explain", "faithfulness"]


class _CallablePackage(types.ModuleType):
    """This package; calling it calls :func:`atomlens.explain.attention.explain`."""

    def __call__(self, *args: Any, **kwargs: Any) -> list[Explanation]:
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
