import ase.build
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from atomlens.batching import batch_from_graphs, collate
from atomlens.datasets import GraphDataset, build_graph_cache
from atomlens.datasets.sources import Source
from atomlens.errors import DataError
from atomlens.graphs import CutoffParams, cutoff_graph
from atomlens.models import Sen, SenConfig, build_model, graph_spec
from atomlens.structures import from_ase, read_structures

SMALL = {"width": 16, "composition_dim": 16, "conv_channels": 8, "head_dim": 16}
PARAMS = CutoffParams(cutoff=5.0, widen=True, symmetry=True)


def make_model(**changes) -> Sen:
    torch.manual_seed(0)
    return Sen(SenConfig(**(SMALL | changes))).double().eval()


def graphs_of(atoms_list):
    return [cutoff_graph(from_ase(a), PARAMS) for a in atoms_list]


def predict(model, graphs):
    return model(batch_from_graphs(graphs, dtype=torch.float64))


@pytest.fixture
def crystals(crystal_file):
    return list(read_structures(crystal_file))


@pytest.fixture
def crystal_dataset(crystals, tmp_path):
    source = Source(
        name="c",
        structures=crystals,
        targets=np.zeros((len(crystals), 1)),
        target_names=("y",),
        ids=[str(k) for k in range(len(crystals))],
        fingerprint="c",
    )
    path = build_graph_cache(
        source, "cutoff", PARAMS, cache_dir=tmp_path, workers=1, progress=False
    )
    return GraphDataset(path)


def test_outputs_have_documented_shapes_and_attention_sums_to_one(crystal_dataset):
    model = make_model()
    n = len(crystal_dataset)
    batch = collate(crystal_dataset, np.arange(n), dtype=torch.float64)
    out = model(batch)
    assert out["prediction"].shape == (n,)
    assert out["crystal_vector"].shape == (n, 256)
    assert out["capsule_presence"].shape == (n, 16)
    assert out["capsule_pose"].shape == (n, 16, 6)
    assert out["capsule_matrix"].shape == (n, 16, 6)
    assert ((out["capsule_presence"] > 0) & (out["capsule_presence"] < 1)).all()
    sums = torch.zeros(n, dtype=torch.float64).index_add_(
        0, batch.graph_index, out["atom_attention"]
    )
    assert torch.allclose(sums, torch.ones(n, dtype=torch.float64))


def test_prediction_does_not_depend_on_batch_mates_at_inference(crystal_dataset):
    model = make_model(cross_attention=True)
    n = len(crystal_dataset)
    together = model(collate(crystal_dataset, np.arange(n), dtype=torch.float64))
    for k in range(n):
        alone = model(collate(crystal_dataset, np.array([k]), dtype=torch.float64))
        for key in ("prediction", "capsule_matrix", "crystal_vector"):
            assert torch.allclose(alone[key][0], together[key][k], atol=1e-10), key


def test_cross_attention_mixes_the_batch_only_in_training(crystal_dataset):
    model = make_model(cross_attention=True, presence_noise=0.0).train()
    together = model(collate(crystal_dataset, np.arange(4), dtype=torch.float64))
    alone = model(collate(crystal_dataset, np.array([0]), dtype=torch.float64))
    assert not torch.allclose(alone["prediction"][0], together["prediction"][0])


def test_presence_noise_only_in_training(crystal_dataset):
    batch = collate(crystal_dataset, np.arange(4), dtype=torch.float64)
    model = make_model()
    assert torch.equal(model(batch)["capsule_presence"], model(batch)["capsule_presence"])
    model.train()
    assert not torch.equal(model(batch)["capsule_presence"], model(batch)["capsule_presence"])


def test_invariant_to_rotation_translation_atom_order_and_supercell():
    model = make_model()
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64) * (1, 1, 2)
    atoms.symbols[1] = "K"  # a less symmetric crystal: Na K Cl Cl over two cells
    moved = atoms.copy()
    rotation = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    moved.set_cell(atoms.cell.array @ rotation.T, scale_atoms=True)
    moved.translate([0.7, -0.2, 1.3])
    shuffled = atoms[[3, 1, 0, 2]]
    supercell = atoms * (2, 1, 1)
    reference, *others = predict(model, graphs_of([atoms, moved, shuffled, supercell]))[
        "prediction"
    ]
    for value in others:
        assert torch.allclose(value, reference, atol=1e-8)


def test_symmetry_stream_is_used_only_when_switched_on(crystal_dataset):
    batch = collate(crystal_dataset, np.arange(6), dtype=torch.float64)
    changed = batch.replace(space_group=torch.where(batch.space_group == 225, 221, 225))
    with_stream, without = make_model(), make_model(symmetry=False)
    assert not torch.allclose(with_stream(batch)["prediction"], with_stream(changed)["prediction"])
    assert torch.equal(without(batch)["prediction"], without(changed)["prediction"])


def test_symmetry_model_needs_symmetry_in_the_graphs():
    atoms = ase.build.bulk("Cu", "fcc", a=3.6)
    graph = cutoff_graph(from_ase(atoms), CutoffParams(cutoff=5.0))
    with pytest.raises(DataError, match="symmetry"):
        make_model()(batch_from_graphs([graph], dtype=torch.float64))
    make_model(symmetry=False)(batch_from_graphs([graph], dtype=torch.float64))


def test_readout_mask_removes_atoms_from_the_pooling(crystal_dataset):
    model = make_model()
    batch = collate(crystal_dataset, np.arange(3), dtype=torch.float64)
    mask = torch.ones(batch.numbers.shape[0], dtype=torch.bool)
    mask[1] = False  # the first atom of the second crystal (the first has a single atom)
    out = model(batch, readout_mask=mask)
    assert out["atom_attention"][1] == 0
    assert torch.isfinite(out["prediction"]).all()


def test_registry_picks_the_graph_each_model_reads():
    assert graph_spec(SenConfig()) == ("cutoff", {"cutoff": 5.0, "widen": True, "symmetry": True})
    assert graph_spec(SenConfig(symmetry=False), {"cutoff": 4.0})[1]["cutoff"] == 4.0
    assert isinstance(build_model(SenConfig(**SMALL)), Sen)


def test_crystal_dim_other_than_256_is_refused():
    with pytest.raises(ValueError, match="16 x 16"):
        SenConfig(crystal_dim=128)
