"""The one declaration of the fields a graph carries, from the cache on disk to a batch.

Each field lives at one level: per ``graph`` (one row per structure), per ``node`` (one row
per atom) or per ``edge`` (one row per directed edge). The level says how a field is sliced
from the cache, concatenated into a batch and cut down to a subgraph; ``kind`` says its
in-memory type (``index`` fields are atom indices local to their graph, shifted when graphs
are concatenated). Optional fields belong to a ``group`` that a graph has entirely or not at
all (``symmetry``, when the graphs were built with it).

To add a field: declare it here, and fill it where graphs are made (``graphs.graph`` /
``graphs.voronoi`` / ``graphs.cutoff``). The cache, :class:`atomlens.graphs.graph.Graph`,
collate, ``batch_from_graphs`` and subgraph extraction all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Level = Literal["graph", "node", "edge"]
Kind = Literal["index", "int", "float", "bool"]

# In-memory numpy type of each kind (the cache may store a narrower type).
MEMORY_DTYPES: dict[str, type] = {
    "index": np.int64,
    "int": np.int64,
    "float": np.float64,
    "bool": np.bool_,
}


@dataclass(frozen=True)
class FieldSpec:
    """One field of a graph.

    Attributes:
        name: Attribute name on Graph and Batch, and array name in the cache.
        level: ``graph``, ``node`` or ``edge``.
        kind: ``index`` (atom index into the same graph), ``int``, ``float`` or ``bool``.
        stored: dtype of the field in a cache entry.
        shape: Shape of one row (``()`` for a scalar per row).
        group: Name of the optional group the field belongs to; None when always present.
        doc: What the field holds, with its unit.
    """

    name: str
    level: Level
    kind: Kind
    stored: type
    shape: tuple[int, ...] = ()
    group: str | None = None
    doc: str = ""

    @property
    def memory_dtype(self) -> type:
        """Numpy dtype of the field in a Graph."""
        return MEMORY_DTYPES[self.kind]

    @property
    def optional(self) -> bool:
        """True when the field is present only with its group."""
        return self.group is not None

    def empty(self) -> np.ndarray:
        """A zero-row array in the stored dtype."""
        return np.empty((0, *self.shape), dtype=self.stored)


# Cache dtypes are those of cache format 1 (float32 keeps all of QM9 at ~340 MiB).
FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("numbers", "node", "int", np.int16, doc="atomic number"),
    FieldSpec("positions", "node", "float", np.float64, (3,), doc="Cartesian position, A"),
    FieldSpec("cell", "graph", "float", np.float64, (3, 3), doc="cell vectors as rows, A"),
    FieldSpec("pbc", "graph", "bool", np.bool_, (3,), doc="periodicity along each cell vector"),
    FieldSpec("centers", "edge", "index", np.int32, doc="atom that owns the edge"),
    FieldSpec("neighbors", "edge", "index", np.int32, doc="unit-cell index of the neighbour"),
    FieldSpec("shifts", "edge", "int", np.int16, (3,), doc="image offset of the neighbour"),
    FieldSpec("distance", "edge", "float", np.float32, doc="edge length, A"),
    FieldSpec(
        "solid_angle", "edge", "float", np.float32, doc="Voronoi face solid angle, sr; NaN: cutoff"
    ),
    FieldSpec(
        "solid_angle_ratio",
        "edge",
        "float",
        np.float32,
        doc="solid angle over the centre's largest; NaN for cutoff graphs",
    ),
    FieldSpec(
        "space_group",
        "graph",
        "int",
        np.int16,
        group="symmetry",
        doc="international space-group number 1-230; 0 when unknown",
    ),
    FieldSpec(
        "site_symmetry_order",
        "node",
        "int",
        np.int16,
        group="symmetry",
        doc="order of the atom's site-symmetry group",
    ),
    FieldSpec(
        "wyckoff_multiplicity",
        "node",
        "int",
        np.int16,
        group="symmetry",
        doc="Wyckoff multiplicity of the atom in the conventional cell",
    ),
)
FIELDS_BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}
GROUPS: tuple[str, ...] = tuple(sorted({f.group for f in FIELDS if f.group}))

# Fields a Batch adds to the graph fields (made by batching, never stored per graph).
BATCH_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("graph_index", "node", "int", np.int64, doc="position of the atom's graph"),
    FieldSpec("num_atoms", "graph", "int", np.int64, doc="atoms of each graph"),
    FieldSpec("targets", "graph", "float", np.float64, doc="labels (B, T); NaN: none"),
    FieldSpec("index", "graph", "int", np.int64, doc="row of each graph in its data set"),
)


def fields_at(level: Level) -> tuple[FieldSpec, ...]:
    """The graph fields of one level."""
    return tuple(f for f in FIELDS if f.level == level)


def group_fields(group: str) -> tuple[FieldSpec, ...]:
    """The fields of one optional group."""
    return tuple(f for f in FIELDS if f.group == group)
