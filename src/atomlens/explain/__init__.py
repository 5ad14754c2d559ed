"""Explanations: per-atom attention as files, an offline HTML viewer, figures, faithfulness."""

from atomlens.explain.attention import Explanation, explain
from atomlens.explain.faithfulness import FaithfulnessReport, faithfulness

__all__ = ["Explanation", "FaithfulnessReport", "explain", "faithfulness"]
