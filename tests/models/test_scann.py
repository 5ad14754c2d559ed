import ase.build
import numpy as np
import pytest
import torch

from atomlens.batching import collate
from atomlens.datasets import GraphDataset, build_graph_cache
from atomlens.models import Scann, ScannConfig
from atomlens.models.layers import segment_softmax
from atomlens.structures import make_structure, read_structures

SMALL = {
    "n_layers": 2,
    "local_dim": 32,
    "n_heads": 4,
    "ffn_dim": 32,
    "global_dim": 32,
    "readout_dim": 16,
    "embedding_dim": 8,
}


@pytest.fixture(params=["scann", "scann_plus"])
def model(request):
    torch.manual_seed(0)
    net = Scann(ScannConfig(variant=request.param, **SMALL)).double()
    return net.eval()


def dataset_of(structures, tmp_path, name):
    from atomlens.datasets.sources import Source

    source = Source(
        name=name,
        structures=structures,
        targets=np.zeros((len(structures), 1)),
        target_names=("y",),
        ids=[str(k) for k in range(len(structures))],
        fingerprint=name,
    )
    return GraphDataset(build_graph_cache(source, cache_dir=tmp_path, workers=1, progress=False))


def run(model, dataset, indices):
    batch = collate(dataset, np.asarray(indices), dtype=torch.float64)
    return model(batch, return_local_attention=True)


@pytest.fixture
def molecules(tmp_path, molecule_file):
    return list(read_structures(molecule_file))


def test_outputs_and_attention_sums_to_one(model, molecules, tmp_path):
    dataset = dataset_of(molecules, tmp_path, "m")
    out = run(model, dataset, range(len(molecules)))
    assert out["prediction"].shape == (len(molecules),)
    graph = collate(dataset, np.arange(len(molecules))).graph_index
    sums = torch.zeros(len(molecules), dtype=torch.float64).index_add_(
        0, graph, out["atom_attention"]
    )
    torch.testing.assert_close(sums, torch.ones_like(sums))
    assert len(out["local_attention"]) == 2
    local = out["local_attention"][0]
    centers = collate(dataset, np.arange(len(molecules))).centers
    per_atom = torch.zeros(int(centers.max()) + 1, local.shape[1], dtype=local.dtype).index_add_(
        0, centers, local
    )
    torch.testing.assert_close(per_atom, torch.ones_like(per_atom))


def test_batched_equals_one_by_one(model, molecules, tmp_path):
    dataset = dataset_of(molecules, tmp_path, "m")
    together = run(model, dataset, range(len(molecules)))
    for k in range(len(molecules)):
        alone = run(model, dataset, [k])
        torch.testing.assert_close(alone["prediction"][0], together["prediction"][k])


def test_permutation_rotation_translation_invariance(model, molecules, tmp_path):
    molecule = molecules[9]
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    perm = rng.permutation(len(molecule))
    moved = make_structure(
        molecule.numbers[perm], molecule.positions[perm] @ rotation.T + [3.0, -1.0, 7.5]
    )
    dataset = dataset_of([molecule, moved], tmp_path, "pair")
    a, b = run(model, dataset, [0]), run(model, dataset, [1])
    torch.testing.assert_close(a["prediction"], b["prediction"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(a["atom_attention"][perm], b["atom_attention"], rtol=1e-4, atol=1e-6)


def test_equivalent_atoms_get_equal_attention(tmp_path):
    # SCANN's global scores grow with the number of atoms, so a supercell is not invariant
    # by design; symmetry-equivalent atoms must still get identical attention.
    from atomlens.structures import from_ase

    torch.manual_seed(0)
    net = Scann(ScannConfig(**SMALL, max_distance=6.0)).double().eval()
    supercell = from_ase(ase.build.bulk("NaCl", "rocksalt", a=5.64) * (2, 2, 1))
    dataset = dataset_of([supercell], tmp_path, "nacl")
    alpha = run(net, dataset, [0])["atom_attention"]
    numbers = torch.from_numpy(supercell.numbers)
    for z in (11, 17):
        same = alpha[numbers == z]
        torch.testing.assert_close(same, same[0].expand_as(same))
    torch.testing.assert_close(alpha.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_segment_softmax_gradient():
    logits = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    segment = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 3])
    assert torch.autograd.gradcheck(lambda x: segment_softmax(x, segment, 4), (logits,))
    weights = segment_softmax(logits, segment, 4)
    reference = torch.cat([torch.softmax(logits[segment == k], dim=0) for k in range(4)])
    torch.testing.assert_close(weights, reference)


def test_segment_softmax_is_stable_for_huge_logits():
    logits = torch.tensor([1000.0, 1001.0, -1000.0])
    weights = segment_softmax(logits, torch.tensor([0, 0, 1]), 2)
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights[2], torch.tensor(1.0))


def test_bad_head_count():
    with pytest.raises(ValueError, match="not divisible"):
        Scann(ScannConfig(local_dim=30, n_heads=4))


def test_gradients_reach_every_parameter(molecules, tmp_path):
    torch.manual_seed(0)
    net = Scann(ScannConfig(**SMALL))
    dataset = dataset_of(molecules, tmp_path, "m")
    batch = collate(dataset, np.arange(len(molecules)))
    net(batch)["prediction"].sum().backward()
    assert [n for n, p in net.named_parameters() if p.grad is None] == []


def _cell_and_supercells(structure, repeats):
    from atomlens.structures import from_ase, to_ase

    atoms = to_ase(structure)
    return [structure] + [from_ase(atoms * r) for r in repeats]


@pytest.mark.parametrize("variant", ["scann", "scann_plus"])
def test_size_consistent_attention_is_supercell_invariant(variant, crystal_file):
    from atomlens.batching import batch_from_graphs
    from atomlens.graphs import voronoi_graphs

    torch.manual_seed(1)
    config = ScannConfig(variant=variant, global_attention="size_consistent", **SMALL)
    net = Scann(config.model_copy(update={"max_distance": 6.0})).double().eval()
    paper = Scann(ScannConfig(variant=variant, **SMALL, max_distance=6.0)).double().eval()
    paper.load_state_dict(net.state_dict())  # same weights, only the global scores differ
    repeats = [(2, 2, 2), (3, 3, 1)]
    crystals = [s for s in read_structures(crystal_file) if 2 <= len(s) <= 5][:3]
    assert crystals
    for crystal in crystals:
        structures = _cell_and_supercells(crystal, repeats)
        batch = batch_from_graphs(voronoi_graphs(structures), dtype=torch.float64)
        with torch.no_grad():
            out, out_paper = net(batch), paper(batch)
        y = out["prediction"]
        torch.testing.assert_close(y[1:], y[0].expand(2), atol=1e-5, rtol=0)
        alpha = out["atom_attention"]
        bounds = np.cumsum([0, *[len(s) for s in structures]])
        primitive = alpha[: bounds[1]]
        for k, r in enumerate(repeats, start=1):
            n_cells = int(np.prod(r))
            copies = alpha[bounds[k] : bounds[k + 1]].view(n_cells, len(crystal)) * n_cells
            torch.testing.assert_close(copies, primitive.expand_as(copies), atol=1e-8, rtol=1e-6)
        # The reference's mode is documented as not size-consistent: it changes here.
        y_paper = out_paper["prediction"]
        assert (y_paper[1:] - y_paper[0]).abs().max() > 1e-6
