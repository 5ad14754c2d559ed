"""Neighbour graphs: Voronoi with solid angles (SCANN) and plain cutoff graphs."""

from atomlens.graphs.cutoff import CutoffParams, cutoff_graph
from atomlens.graphs.graph import Graph
from atomlens.graphs.voronoi import VoronoiParams, voronoi_faces, voronoi_graph, voronoi_graphs

__all__ = [
    "CutoffParams",
    "Graph",
    "VoronoiParams",
    "cutoff_graph",
    "voronoi_faces",
    "voronoi_graph",
    "voronoi_graphs",
]
