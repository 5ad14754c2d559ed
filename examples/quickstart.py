"""atomlens quick start: structures -> Voronoi graphs -> cached data set -> flat batches.

Runs offline in a few seconds: python examples/quickstart.py [CACHE_DIR]
"""

import sys
import tempfile

import ase.build

from atomlens.batching import iterate_batches
from atomlens.datasets import GraphDataset, build_graph_cache, load_source, random_split
from atomlens.graphs import VoronoiParams, voronoi_graph
from atomlens.structures import from_ase

# 1. A molecule: open boundaries, neighbours from Voronoi faces with solid angles.
ethanol = from_ase(ase.build.molecule("CH3CH2OH"))
graph = voronoi_graph(ethanol)
print(f"{ethanol.formula}: {graph.num_edges} edges, degree per atom {graph.degree().tolist()}")

# 2. A crystal: neighbours are unit-cell sites plus the image offset of each.
silicon = from_ase(ase.build.bulk("Si", "diamond", a=5.43))
graph = voronoi_graph(silicon, VoronoiParams(max_distance=6.0))
print(f"{silicon.formula}: solid angles of atom 0 = {graph.solid_angle[graph.centers == 0]}")
print(f"           image offsets = {graph.shifts[graph.centers == 0].tolist()}")

# 3. A data set: QM9 molecules with HOMO labels, cached graphs, a saved split, batches.
cache_dir = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
source = load_source("qm9", targets=["homo"], limit=300)
dataset = GraphDataset(build_graph_cache(source, cache_dir=cache_dir, progress=False))
split = random_split(len(dataset), val=0.1, test=0.1, seed=0)
split.save(f"{cache_dir}/split.json")
batch = next(iterate_batches(dataset, split.train, batch_size=32, shuffle=True, seed=0))
print(
    f"batch: {batch.num_graphs} molecules, {batch.numbers.numel()} atoms, "
    f"{batch.centers.numel()} edges, targets {tuple(batch.targets.shape)}"
)
